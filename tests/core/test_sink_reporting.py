"""What a sink tells its user: the byte budget it holds, and one clear log line per kind of trouble."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import streamll
from streamll.core.events import Event, TokenEvent
from streamll.sinks.base import BaseSink

from tests.core.support import GatedSink, event
from tests.helpers import wait_until

OVERHEAD = 360
"""Bytes the byte budget counts for an event's envelope (sinks.base.EVENT_OVERHEAD, documented there)."""


@pytest.fixture
def sinks() -> Iterator[list[BaseSink]]:
    """Sinks a test starts; each has its gate opened and is stopped afterwards."""
    started: list[BaseSink] = []
    yield started
    streamll.configure(sinks=None)
    for sink in started:
        if isinstance(sink, GatedSink):
            sink.open_gate()
        sink.stop(timeout=5)


def token(text: str, index: int) -> TokenEvent:
    return TokenEvent(execution_id="exec", token=text, token_index=index, field="answer")


def test_queued_bytes_counts_each_buffered_event_and_returns_to_zero(sinks: list[BaseSink]) -> None:
    sink = GatedSink(batch_size=2, linger=0.0)
    sinks.append(sink)
    sink.enqueue(event(0))
    wait_until(lambda: sink.started == 1, what="the first batch to reach the destination")
    short, long = token("a", 0), token("a much longer token", 1)
    sink.enqueue(short)
    after_short = sink.stats.queued_bytes
    assert after_short == OVERHEAD + 16 * len(short.data) + 1  # envelope, 16 per data key, the token's text
    sink.enqueue(long)
    assert sink.stats.queued_bytes == after_short + OVERHEAD + 16 * len(long.data) + len(long.token)
    custom = Event(event_type="custom", execution_id="exec", data={"text": "abc", "n": 3})
    sink.enqueue(custom)
    expected_custom = OVERHEAD + (16 + 3) + (16 + 64)  # a str value counts its length, anything else 64
    assert sink.stats.queued_bytes == after_short + OVERHEAD + 16 * len(long.data) + len(long.token) + expected_custom
    for index in range(10):
        sink.enqueue(event(10 + index))
    sink.open_gate()
    assert sink.flush(timeout=10)
    stats = sink.stats
    assert (stats.queued, stats.queued_bytes, stats.delivered) == (0, 0, 14)


def test_buffer_bytes_bounds_the_buffer(sinks: list[BaseSink]) -> None:
    """With room for two events' bytes, a third is dropped (drop_newest), whatever buffer_size allows."""
    size = OVERHEAD + 16 + 64  # one custom event with one int value
    sink = GatedSink(buffer_size=100, buffer_bytes=2 * size, overflow="drop_newest")
    sinks.append(sink)
    sink.enqueue(event(0))
    wait_until(lambda: sink.started == 1, what="the first batch to reach the destination")
    for index in range(1, 4):
        sink.enqueue(event(index))
    assert sink.stats.dropped == 1 and sink.stats.queued_bytes == 2 * size


def test_a_full_buffer_logs_what_it_dropped(sinks: list[BaseSink], caplog: pytest.LogCaptureFixture) -> None:
    sink = GatedSink(name="gated", buffer_size=1, overflow="drop_newest")
    sinks.append(sink)
    sink.enqueue(event(0))
    wait_until(lambda: sink.started == 1, what="the first batch to reach the destination")
    with caplog.at_level(logging.WARNING, logger="streamll"):
        sink.enqueue(event(1))
        sink.enqueue(event(2))
    assert "streamll sink gated: buffer full: dropped the new event (1 dropped so far)" in caplog.messages
    assert sink.stats.last_error == "buffer full: dropped the new event"


class PickySink(GatedSink):
    """Refuses to encode an event whose data holds ``"bad"``."""

    def encode(self, event: Event) -> Any:
        if "bad" in event.data:
            raise ValueError("cannot take this one")
        return super().encode(event)


def test_an_event_that_cannot_be_encoded_is_logged_and_counted_alone(
    sinks: list[BaseSink], caplog: pytest.LogCaptureFixture
) -> None:
    sink = PickySink(name="picky")
    sinks.append(sink)
    sink.open_gate()
    bad = Event(event_type="custom", execution_id="exec", data={"bad": 1})
    with caplog.at_level(logging.ERROR, logger="streamll"):
        for item in (event(0), bad, event(1)):
            sink.enqueue(item)
        assert sink.flush(timeout=10)
    assert (
        "streamll sink picky: cannot encode an event, skipped it: ValueError: cannot take this one" in caplog.messages
    )
    assert [item.data["i"] for item in sink.written] == [0, 1]
    stats = sink.stats
    assert (stats.delivered, stats.failed) == (2, 1)
    assert stats.last_error == f"cannot encode event {bad.event_id}: cannot take this one"


def test_the_same_message_is_logged_at_most_once_a_second(
    sinks: list[BaseSink], caplog: pytest.LogCaptureFixture
) -> None:
    sink = GatedSink(name="gated", buffer_size=1, overflow="drop_newest")
    sinks.append(sink)
    sink.enqueue(event(0))
    wait_until(lambda: sink.started == 1, what="the first batch to reach the destination")
    with caplog.at_level(logging.WARNING, logger="streamll"):
        for index in range(1, 6):
            sink.enqueue(event(index))
    assert sink.stats.dropped == 4
    assert [message for message in caplog.messages if "buffer full" in message] == [
        "streamll sink gated: buffer full: dropped the new event (1 dropped so far)"
    ]


def test_stop_without_a_timeout_waits_for_the_write_in_progress(
    sinks: list[BaseSink], caplog: pytest.LogCaptureFixture
) -> None:
    sink = GatedSink(name="gated")
    sinks.append(sink)
    sink.enqueue(event(0))
    sink.enqueue(event(1))
    wait_until(lambda: sink.started == 1, what="the first batch to reach the destination")
    opener = threading.Timer(0.2, sink.open_gate)
    opener.start()
    with caplog.at_level(logging.WARNING, logger="streamll"):
        assert sink.stop(timeout=None) is True
    opener.join()
    assert [item.data["i"] for item in sink.written] == [0, 1]
    assert (sink.stats.delivered, sink.stats.dropped) == (2, 0)
    assert not [message for message in caplog.messages if "gated" in message], caplog.messages


class HalfSink(BaseSink):
    """Delivers only the first event of each batch and says so."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.written: list[Event] = []

    async def write_batch(self, events: list[Any]) -> int | None:
        self.written.append(events[0])
        return 1  # of len(events)


def test_events_a_batch_did_not_deliver_are_counted_failed_and_reported(
    sinks: list[BaseSink], caplog: pytest.LogCaptureFixture
) -> None:
    sink = HalfSink(name="half", batch_size=3, linger=2.0)  # the linger gathers the three into one batch
    sinks.append(sink)
    with caplog.at_level(logging.ERROR, logger="streamll"):
        for index in range(3):
            sink.enqueue(event(index))
        assert sink.flush(timeout=10)
    stats = sink.stats
    batches = stats.batches  # 1, unless the machine stalled this thread for the whole linger
    assert (stats.delivered, stats.failed) == (batches, 3 - batches) and batches < 3
    assert stats.last_error is not None and stats.last_error.startswith("write_batch delivered 1 of ")
    assert f"streamll sink half: {stats.last_error}; the rest counted as failed" in caplog.messages


class _SlowHandler(logging.Handler):
    """A log handler that takes a while to write (a remote log shipper, say)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        threading.Event().wait(0.3)
        self.messages.append(record.getMessage())


def test_flush_returns_after_a_batchs_failures_are_reported(sinks: list[BaseSink]) -> None:
    """A program that flushes and then reads its logs sees the failure that flush waited for."""
    handler = _SlowHandler()
    streamll_logger = logging.getLogger("streamll")
    streamll_logger.addHandler(handler)
    try:
        sink = HalfSink(name="half-slow-log", batch_size=3, linger=2.0)
        sinks.append(sink)
        for index in range(3):
            sink.enqueue(event(index))
        assert sink.flush(timeout=10)
        assert any("the rest counted as failed" in message for message in handler.messages), handler.messages
    finally:
        streamll_logger.removeHandler(handler)
