"""BaseConsumer: how long consume_one and ``async for`` wait, on transports that poll in slices."""

from __future__ import annotations

import asyncio
import time

from streamll.consumer import Received
from streamll.core.events import Event

from tests.core.fake_plugins import Handle, QueueConsumer
from tests.helpers import async_wait_until


class SlicedConsumer(QueueConsumer):
    """A transport that gives up each read after a short slice and returns None (as Redis does after BLOCK)."""

    slice = 0.01

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.empty_reads = 0

    async def _receive(self, timeout: float | None) -> Received[Handle] | None:
        received = await super()._receive(self.slice if timeout is None else min(timeout, self.slice))
        self.empty_reads += received is None
        return received


async def test_without_a_timeout_consume_one_waits_through_empty_reads() -> None:
    event = Event(event_type="x")
    async with SlicedConsumer() as consumer:
        waiting = asyncio.create_task(consumer.consume_one())
        await async_wait_until(lambda: consumer.empty_reads >= 3, what="a few empty reads")
        assert not waiting.done()
        consumer.put(event.to_json())
        assert await asyncio.wait_for(waiting, timeout=5) == event


async def test_a_timeout_spans_several_empty_reads() -> None:
    event = Event(event_type="x")
    async with SlicedConsumer() as consumer:
        asyncio.get_running_loop().call_later(0.1, consumer.put, event.to_json())
        assert await consumer.consume_one(timeout=5) == event
    assert consumer.empty_reads >= 1  # the message came after the transport had returned None


async def test_a_zero_timeout_returns_at_once_when_nothing_is_waiting() -> None:
    async with QueueConsumer() as consumer:
        started = time.monotonic()
        assert await consumer.consume_one(timeout=0) is None
        assert time.monotonic() - started < 0.5


class WatchedConsumer(QueueConsumer):
    """A transport whose reads block until a message comes (or the timeout passes); counts the reads begun."""

    reads = 0

    async def _receive(self, timeout: float | None) -> Received[Handle] | None:
        self.reads += 1
        return await super()._receive(timeout)


async def test_async_for_ends_soon_after_another_task_stops_the_idle_consumer() -> None:
    consumer = WatchedConsumer()  # no message ever comes
    await consumer.start()
    seen: list[Event] = []

    async def read_all() -> None:
        async for event in consumer:
            seen.append(event)

    reader = asyncio.create_task(read_all())
    await async_wait_until(lambda: consumer.reads >= 1, what="the loop waiting for a message")
    await consumer.stop()
    await asyncio.wait_for(reader, timeout=5)
    assert seen == []
