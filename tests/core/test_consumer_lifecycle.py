"""BaseConsumer: starting and stopping, waiting without a timeout, and skipped messages whose ack fails."""

from __future__ import annotations

import asyncio

import pytest
from streamll.core.events import Event
from streamll.errors import ConsumerError

from tests.core.fake_plugins import QueueConsumer


class CountingConsumer(QueueConsumer):
    """Counts connections and disconnections."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.connects = 0
        self.disconnects = 0

    async def _connect(self) -> None:
        self.connects += 1
        await super()._connect()

    async def _disconnect(self) -> None:
        self.disconnects += 1
        await super()._disconnect()


async def test_start_and_stop_are_idempotent() -> None:
    consumer = CountingConsumer()
    assert consumer.is_started is False
    await consumer.stop()  # never started: nothing to close
    assert consumer.disconnects == 0 and not consumer.is_started
    await consumer.start()
    await consumer.start()
    assert consumer.connects == 1 and consumer.is_started
    await consumer.stop()
    await consumer.aclose()
    assert consumer.disconnects == 1 and consumer.is_started is False
    await consumer.start()  # a stopped consumer can start again
    assert consumer.connects == 2 and consumer.is_started
    await consumer.stop()


async def test_async_with_gives_the_consumer_itself() -> None:
    consumer = QueueConsumer()
    async with consumer as entered:
        assert entered is consumer


async def test_the_not_started_error_names_the_consumer_class() -> None:
    with pytest.raises(
        ConsumerError, match=r"^CountingConsumer is not started; call `await consumer.start\(\)` first$"
    ):
        await CountingConsumer().consume_one(timeout=0)


async def test_without_a_timeout_consume_one_waits_for_the_next_message() -> None:
    event = Event(event_type="x")
    async with QueueConsumer() as consumer:
        asyncio.get_running_loop().call_soon(consumer.put, event.to_json())
        received = await asyncio.wait_for(consumer.consume_one(), timeout=5)
    assert received == event


async def test_a_list_of_event_types_keeps_each_of_them() -> None:
    events = [Event(event_type=kind) for kind in ("start", "token", "end", "error")]
    async with QueueConsumer([event.to_json() for event in events], event_types=["start", "error"]) as consumer:
        kept = [await consumer.consume_one(timeout=1), await consumer.consume_one(timeout=1)]
        assert await consumer.consume_one(timeout=0.05) is None
    assert [event.event_id for event in kept if event] == [events[0].event_id, events[3].event_id]
    assert consumer.stats.filtered == 2


async def test_a_failed_ack_of_a_skipped_message_is_logged_and_not_counted(caplog: pytest.LogCaptureFixture) -> None:
    good = Event(event_type="x")
    with caplog.at_level("WARNING", logger="streamll"):
        async with QueueConsumer([b"not json", good.to_json()]) as consumer:
            consumer.fail_next_ack = True
            assert await consumer.consume_one(timeout=1) == good  # the failure does not stop the stream
    assert consumer.stats.malformed == 1
    assert consumer.stats.acked == 0 and consumer.acked == []
    assert "streamll consumer QueueConsumer: ack of a skipped message failed: ack lost" in caplog.messages


async def test_a_body_of_an_unexpected_type_is_skipped_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    """A transport handing over something other than bytes must not end the consumer's loop."""
    good = Event(event_type="x")
    with caplog.at_level("WARNING", logger="streamll"):
        async with QueueConsumer([memoryview(b"{}"), good.to_json()]) as consumer:  # type: ignore[list-item]
            assert await consumer.consume_one(timeout=1) == good
    assert consumer.stats.malformed == 1 and consumer.acked == [0]
    assert (consumer.stats.last_error or "").startswith("cannot decode: TypeError: ")
    assert caplog.messages[0].startswith("streamll consumer QueueConsumer: skipped a malformed message (cannot decode:")
    assert caplog.messages[0].endswith(": 'memoryview'")


def test_stats_start_at_zero_with_no_error() -> None:
    assert QueueConsumer().stats.as_dict() == {
        "consumed": 0,
        "acked": 0,
        "malformed": 0,
        "filtered": 0,
        "reconnects": 0,
        "last_error": None,
    }
