"""Contract tests every transport plugin passes: subclass, provide fixtures, done.

::

    class TestRedisContract(TransportContract):
        @pytest.fixture
        def transport(self, redis_url):
            return RedisTransport(redis_url)   # a TransportFixture

A :class:`TransportFixture` makes sinks and consumers bound to one fresh
destination (stream / subject / topic) and can publish raw bytes there.
"""

from __future__ import annotations

import abc
import asyncio
import subprocess
import sys
from typing import Any

import pytest

from streamll.consumer import BaseConsumer
from streamll.core.context import Execution
from streamll.core.emitter import make_event
from streamll.core.events import Event, TokenEvent
from streamll.core.serialization import event_to_dict
from streamll.sinks.base import BaseSink

POISON: tuple[bytes, ...] = (
    b"[" * 100_000,
    b'{"event_type":"x","timestamp":"0001-01-01T00:00:00+05:00"}',
    b'{"event_type":"x","timestamp":"9999-12-31T23:59:59-05:00"}',
)
"""Bodies that once escaped the decoder (a RecursionError, OverflowErrors) and poisoned a group."""


class TransportFixture(abc.ABC):
    """One fresh destination on a real broker, and how to reach it."""

    @abc.abstractmethod
    def make_sink(self, **options: Any) -> BaseSink:
        """A sink writing to this destination."""

    @abc.abstractmethod
    def make_consumer(
        self, *, from_beginning: bool = True, group: str | None = None, **options: Any
    ) -> BaseConsumer[Any]:
        """A consumer reading this destination (``group`` is a consumer group / durable name)."""

    @abc.abstractmethod
    async def publish_raw(self, body: bytes) -> None:
        """Put ``body`` on the destination as a message, bypassing streamll."""

    destination_url: str | None = None
    """A URL naming this destination, for ``streamll tail`` (tests that need it skip without it)."""


def make_execution_events(count: int, *, field: str = "answer") -> tuple[Execution, list[Event]]:
    """A start event, ``count`` token events and an end event, all of one execution."""
    execution = Execution()
    events: list[Event] = [make_event("start", {"inputs": {"question": "q"}}, execution=execution, module_name="QA")[0]]
    for index in range(count):
        events.append(
            make_event(
                "token",
                execution=execution,
                cls=TokenEvent,
                token=f" tok{index}",
                token_index=index,
                field=field,
                finish_reason="stop" if index == count - 1 else None,
            )[0]
        )
    events.append(make_event("end", {"duration_ms": 1.0}, execution=execution, module_name="QA")[0])
    return execution, events


def write(sink: BaseSink, events: list[Event], timeout: float = 20.0) -> None:
    """Hand ``events`` to ``sink`` and wait until they are delivered."""
    for event in events:
        sink.enqueue(event)
    assert sink.flush(timeout), f"sink did not deliver within {timeout}s: {sink.stats}"


async def read(consumer: BaseConsumer[Any], count: int, timeout: float = 20.0) -> list[Event]:
    """Read exactly ``count`` events (failing after ``timeout`` seconds)."""
    received: list[Event] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(received) < count:
        remaining = deadline - loop.time()
        assert remaining > 0, f"got {len(received)} of {count} events"
        event = await consumer.consume_one(timeout=remaining)
        if event is not None:
            received.append(event)
    return received


class TransportContract:
    """The behaviour users rely on from every transport (sink + consumer)."""

    @pytest.fixture
    def transport(self) -> TransportFixture:
        """The transport under test (each suite defines this fixture)."""
        raise NotImplementedError("subclass TransportContract and provide a `transport` fixture")

    async def test_round_trip_keeps_bodies_and_order(self, transport: TransportFixture) -> None:
        """Events written come back byte-identical in wire form and in order."""
        sink = transport.make_sink()
        _, events = make_execution_events(50)
        await asyncio.to_thread(write, sink, events)
        async with transport.make_consumer(from_beginning=True) as consumer:
            received = await read(consumer, len(events))
        assert [event_to_dict(e) for e in received] == [event_to_dict(e) for e in events]
        assert [e.sequence for e in received] == list(range(len(events)))
        assert isinstance(received[1], TokenEvent) and received[1].token == " tok0" and received[1].field == "answer"
        assert isinstance(received[-2], TokenEvent) and received[-2].finish_reason == "stop"
        assert sink.stats.delivered == len(events) and sink.stats.dropped == 0
        await asyncio.to_thread(sink.stop)

    async def test_consume_one_times_out_with_none(self, transport: TransportFixture) -> None:
        """``consume_one(timeout=...)`` returns ``None`` when nothing arrives."""
        async with transport.make_consumer(from_beginning=True) as consumer:
            started = asyncio.get_running_loop().time()
            assert await consumer.consume_one(timeout=0.3) is None
            assert asyncio.get_running_loop().time() - started < 5.0

    async def test_new_consumer_without_from_beginning_sees_only_new_events(self, transport: TransportFixture) -> None:
        """A consumer that does not start from the beginning sees only events written after it started."""
        sink = transport.make_sink()
        _, old = make_execution_events(3)
        await asyncio.to_thread(write, sink, old)
        async with transport.make_consumer(from_beginning=False) as consumer:
            _, new = make_execution_events(2)
            await asyncio.to_thread(write, sink, new)
            received = await read(consumer, len(new))
        assert [e.event_id for e in received] == [e.event_id for e in new]
        await asyncio.to_thread(sink.stop)

    async def test_filters_by_event_type_and_execution(self, transport: TransportFixture) -> None:
        """``event_types`` and ``execution_id`` filters drop other events."""
        sink = transport.make_sink()
        first, events_a = make_execution_events(4)
        _, events_b = make_execution_events(4)
        await asyncio.to_thread(write, sink, events_a + events_b)
        consumer = transport.make_consumer(from_beginning=True, event_types=["token"], execution_id=first.execution_id)
        async with consumer:
            received = await read(consumer, 4)
            assert await consumer.consume_one(timeout=0.5) is None
        assert all(e.event_type == "token" and e.execution_id == first.execution_id for e in received)
        assert consumer.stats.filtered == len(events_a) + len(events_b) - 4
        await asyncio.to_thread(sink.stop)

    async def test_malformed_messages_are_skipped_and_counted(self, transport: TransportFixture) -> None:
        """A malformed message is skipped, counted and does not stop the consumer."""
        sink = transport.make_sink()
        _, events = make_execution_events(2)
        await transport.publish_raw(b"not json at all")
        await transport.publish_raw(b'{"no_event_type": true}')
        await transport.publish_raw(b"[1, 2, 3]")
        await asyncio.to_thread(write, sink, events)
        async with transport.make_consumer(from_beginning=True) as consumer:
            received = await read(consumer, len(events))
        assert [e.event_id for e in received] == [e.event_id for e in events]
        assert consumer.stats.malformed == 3
        await asyncio.to_thread(sink.stop)

    async def test_poison_messages_are_acked_and_skipped_in_a_group(self, transport: TransportFixture) -> None:
        """Bodies that break a JSON or date parser are skipped and acknowledged; the next event still arrives."""
        sink = transport.make_sink()
        _, events = make_execution_events(4)
        half = len(events) // 2
        await asyncio.to_thread(write, sink, events[:half])
        for body in POISON:
            await transport.publish_raw(body)
        await asyncio.to_thread(write, sink, events[half:])
        for body in POISON:
            await transport.publish_raw(body)
        group = "contract-poison"
        seen: list[str] = []
        async with transport.make_consumer(from_beginning=True, group=group) as consumer:

            async def iterate() -> None:
                async for event in consumer:
                    seen.append(event.event_id)
                    await consumer.ack(event)
                    if len(seen) == len(events):
                        break

            await asyncio.wait_for(iterate(), timeout=30)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while consumer.stats.malformed < 2 * len(POISON) and loop.time() < deadline:
                assert await consumer.consume_one(timeout=0.5) is None
            assert consumer.stats.malformed == 2 * len(POISON)
        assert seen == [e.event_id for e in events]
        async with transport.make_consumer(from_beginning=True, group=group) as again:
            assert await again.consume_one(timeout=2) is None
            assert again.stats.malformed == 0, "a skipped message was not acknowledged and came back"
        await asyncio.to_thread(sink.stop)

    async def test_tail_survives_poison_and_a_lone_surrogate_token(self, transport: TransportFixture) -> None:
        """``streamll tail`` skips what it cannot decode and prints a token no terminal encoding can hold."""
        url = transport.destination_url
        if url is None:
            pytest.skip("this transport fixture names no URL for streamll tail")
            return  # pytest.skip raises; mypy does not know it
        sink = transport.make_sink()
        _, events = make_execution_events(1)
        for body in POISON:
            await transport.publish_raw(body)
        await transport.publish_raw(b'{"event_type":"token","data":{"token":"a\\ud800b","field":"answer"}}')
        await asyncio.to_thread(write, sink, events)
        command = [sys.executable, "-m", "streamll.cli", "tail", url, "--from-beginning"]
        done = await asyncio.to_thread(
            lambda: subprocess.run([*command, "--count", str(1 + len(events))], capture_output=True, timeout=60)
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        lines = done.stdout.decode("utf-8").splitlines()
        assert lines[0] == '[TOKEN] answer: "a\\ud800b"', done.stdout
        assert lines[1:] == ["[START] QA", '[TOKEN] answer: " tok0"', "[END] QA (1 ms)"]
        assert done.stderr.decode().count("skipped a malformed message") == len(POISON)
        await asyncio.to_thread(sink.stop)

    async def test_async_iteration(self, transport: TransportFixture) -> None:
        """``async for`` yields the events in order."""
        sink = transport.make_sink()
        _, events = make_execution_events(5)
        await asyncio.to_thread(write, sink, events)
        seen: list[str] = []
        async with transport.make_consumer(from_beginning=True) as consumer:
            async for event in consumer:
                seen.append(event.event_id)
                if len(seen) == len(events):
                    break
        assert seen == [e.event_id for e in events]
        await asyncio.to_thread(sink.stop)

    async def test_group_resumes_after_ack(self, transport: TransportFixture) -> None:
        """A consumer group resumes after the last acknowledged event."""
        sink = transport.make_sink()
        _, events = make_execution_events(6)
        await asyncio.to_thread(write, sink, events)
        group = "contract-group"
        async with transport.make_consumer(from_beginning=True, group=group) as consumer:
            first = await read(consumer, 3)
            for event in first:
                await consumer.ack(event)
        async with transport.make_consumer(from_beginning=True, group=group) as consumer:
            rest = await read(consumer, len(events) - 3)
            for event in rest:
                await consumer.ack(event)
        assert [e.event_id for e in first + rest] == [e.event_id for e in events]
        await asyncio.to_thread(sink.stop)

    @pytest.mark.invalid_events_expected
    async def test_an_event_that_cannot_be_encoded_fails_alone(self, transport: TransportFixture) -> None:
        """A lone surrogate in the envelope cannot be written as UTF-8: that event is counted, the rest delivered."""
        sink = transport.make_sink()
        _, events = make_execution_events(4)
        bad_module = make_event("custom", {"n": 1}, module_name="QA\ud800")[0]
        bad_type = make_event("custom\udcff", {"n": 2})[0]
        mixed = [events[0], bad_module, events[1], bad_type, *events[2:]]
        await asyncio.to_thread(write, sink, mixed)
        later = make_execution_events(2)[1]
        await asyncio.to_thread(write, sink, later)
        async with transport.make_consumer(from_beginning=True) as consumer:
            received = await read(consumer, len(events) + len(later))
        assert [e.event_id for e in received] == [e.event_id for e in events + later]
        stats = sink.stats
        assert (stats.delivered, stats.failed, stats.dropped, stats.retries) == (len(events) + len(later), 2, 0, 0)
        await asyncio.to_thread(sink.stop)


__all__ = ["TransportContract", "TransportFixture", "make_execution_events", "read", "write"]
