"""What the handler-style EventConsumer does on every transport; each transport's tests subclass this."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from streamll import EventConsumer
from streamll.testing.contract import TransportFixture, make_execution_events, write


async def until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``predicate`` on the loop; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


class EventConsumerContract:
    """Subclass with fixtures ``transport`` (a TransportFixture) and ``url_and_target``."""

    group_options: ClassVar[dict[str, Any]] = {}
    """Transport options that make an unacknowledged event come back promptly (NATS: a short ack_wait)."""

    @pytest.fixture
    def url_and_target(self) -> tuple[str, str]:
        """A broker URL that names no stream / subject / topic, and the target the transport fixture writes to."""
        raise NotImplementedError

    async def test_handlers_by_type_sync_and_async_and_a_raising_handler_does_not_stop_the_loop(
        self, transport: TransportFixture, url_and_target: tuple[str, str]
    ) -> None:
        url, target = url_and_target
        consumer = EventConsumer(url, target=target, from_beginning=True)
        tokens: list[str] = []
        every: list[str] = []

        @consumer.on("token")
        async def on_token(event: Any) -> None:
            tokens.append(event.token)

        @consumer.on("*")
        def on_any(event: Any) -> None:
            every.append(event.event_type)

        @consumer.on("start")
        def broken(event: Any) -> None:
            raise RuntimeError("a bug in the user's handler")

        _, first = make_execution_events(3)
        _, second = make_execution_events(2)
        await asyncio.to_thread(write, transport.make_sink(), first + second)
        task = asyncio.create_task(consumer.run())
        try:
            await until(lambda: len(every) == len(first) + len(second), "every event at the '*' handler")
            assert tokens == [" tok0", " tok1", " tok2", " tok0", " tok1"]
            assert every == [event.event_type for event in first + second]
            assert consumer.stats.handler_errors == 2  # one per start event; the events after it were handled
            assert "a bug in the user's handler" in (consumer.stats.last_error or "")
            assert not task.done()  # run() goes on until stop()
        finally:
            await consumer.stop()
        await asyncio.wait_for(task, 10)
        assert not consumer.is_started

    async def test_in_a_group_an_event_is_acknowledged_after_its_handlers_return(
        self, transport: TransportFixture, url_and_target: tuple[str, str]
    ) -> None:
        url, target = url_and_target
        group = f"g{uuid.uuid4().hex[:10]}"
        _, events = make_execution_events(2)  # start, two tokens, end
        await asyncio.to_thread(write, transport.make_sink(), events)

        first = EventConsumer(url, target=target, group=group, from_beginning=True, **self.group_options)
        seen: list[str] = []

        @first.on("*")
        def fail_on_end(event: Any) -> None:
            seen.append(event.event_id)
            if event.event_type == "end":
                raise RuntimeError("not handled: must come back")

        task = asyncio.create_task(first.run())
        try:
            await until(lambda: len(seen) == len(events), "the first member to see every event")
        finally:
            await first.stop()
        await asyncio.wait_for(task, 10)
        assert first.stats.handler_errors == 1

        second = EventConsumer(url, target=target, group=group, from_beginning=True, **self.group_options)
        again: list[str] = []
        second.on("*")(lambda event: again.append(event.event_id))
        task = asyncio.create_task(second.run())
        try:
            await until(lambda: len(again) >= 1, "the unacknowledged event to come back", timeout=30)
        finally:
            await second.stop()
        await asyncio.wait_for(task, 10)
        # the three acknowledged events are not delivered again; the one whose handler raised is
        assert again[0] == events[-1].event_id
        assert set(again) == {events[-1].event_id}
