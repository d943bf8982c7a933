"""The byte budget to the byte: what fits exactly, what a large event evicts, what goes when nothing else is held."""

from __future__ import annotations

from streamll.core.events import Event
from streamll.core.records import TokenLane, TokenRecord
from streamll.sinks.base import BaseSink
from streamll.sinks.overflow import estimate

from tests.core.support import FlakySink, GatedSink, event, indices
from tests.helpers import wait_until

SMALL = 360 + 16 + 64
"""The byte estimate of ``event(i)``: the envelope, and one entry whose value is not text."""


def down_with_one_in_retry(sinks: list[BaseSink], **options: object) -> FlakySink:
    """A sink whose destination is down, its first event awaiting a retry (so nothing waits for room)."""
    sink = FlakySink(**options)  # type: ignore[arg-type]
    sinks.append(sink)
    sink.enqueue(event(0))
    wait_until(lambda: sink.stats.write_errors >= 1, what="the first write to fail")
    return sink


def test_events_filling_the_budget_exactly_all_stay(sinks: list[BaseSink]) -> None:
    sink = down_with_one_in_retry(sinks, buffer_bytes=3 * SMALL)
    for index in range(1, 4):
        sink.enqueue(event(index))
    assert (sink.stats.queued_bytes, sink.stats.dropped) == (3 * SMALL, 0)
    sink.enqueue(event(4))  # one over: exactly one, the oldest, goes
    assert (sink.stats.queued_bytes, sink.stats.dropped) == (3 * SMALL, 1)
    sink.up.set()
    assert sink.flush(timeout=10)
    assert indices(sink.written) == [0, 2, 3, 4]


def test_a_large_event_evicts_as_many_old_ones_as_it_needs_and_counts_each(sinks: list[BaseSink]) -> None:
    sink = down_with_one_in_retry(sinks, buffer_bytes=3 * SMALL)
    for index in range(1, 4):
        sink.enqueue(event(index))
    large = Event(event_type="custom", execution_id="exec", data={"i": 4, "text": "x" * 600})
    sink.enqueue(large)  # 1,056 bytes: only room for it once all three are gone
    stats = sink.stats
    assert (stats.dropped, stats.queued_bytes) == (3, 360 + 16 + 64 + 16 + 600)
    assert stats.last_error == "buffer full: dropped the oldest event"
    sink.up.set()
    assert sink.flush(timeout=10)
    assert indices(sink.written) == [0, 4]


def test_an_event_larger_than_the_whole_budget_still_goes_when_nothing_else_is_held(sinks: list[BaseSink]) -> None:
    sink = GatedSink(buffer_bytes=100)  # less than any one event
    sinks.append(sink)
    sink.open_gate()
    for index in range(3):
        sink.enqueue(event(index))
        assert sink.flush(timeout=10)
    stats = sink.stats
    assert (stats.delivered, stats.dropped) == (3, 0)
    assert indices(sink.written) == [0, 1, 2]


def test_a_token_record_is_counted_as_its_envelope_six_token_entries_and_its_text(sinks: list[BaseSink]) -> None:
    sink = GatedSink()
    sinks.append(sink)
    sink.enqueue(event(0))
    wait_until(lambda: sink.started == 1, what="the first write")
    data = {"predictor": "QA.p", "source": "lm"}
    token = TokenRecord(TokenLane("e" * 32, None, data, {}, "QA.p", "answer"), 3, " hello", 2, None)
    sink.enqueue(token)
    assert sink.stats.queued_bytes == 360 + 6 * 16 + len(" hello") == estimate(token)
    sink.open_gate()
    assert sink.flush(timeout=10)
    assert [item.token for item in sink.written[1:]] == [" hello"]  # type: ignore[attr-defined]
