"""The transport interface: write_batch reports what it delivered and what it rejected; the sink counts."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from streamll.sinks.base import BaseSink
from streamll.sinks.results import BatchResult

from tests.core.support import event


class Picky(BaseSink):
    """Accepts events whose ``data["i"]`` is even; refuses the odd ones for good, with a reason each."""

    def __init__(self) -> None:
        super().__init__(name="picky")
        self.written: list[int] = []
        self.calls = 0

    async def write_batch(self, events: list[Any]) -> BatchResult:
        self.calls += 1
        kept = [e.data["i"] for e in events if e.data["i"] % 2 == 0]
        self.written += kept
        refused = [f"event {e.data['i']} is odd" for e in events if e.data["i"] % 2]
        return BatchResult.of(len(kept), refused)


def test_rejected_events_are_counted_once_with_their_reason(caplog: pytest.LogCaptureFixture) -> None:
    sink = Picky()
    caplog.set_level(logging.ERROR, logger="streamll")
    for n in range(6):
        sink.enqueue(event(n))
    assert sink.flush(5)
    stats = sink.stats
    sink.stop()
    assert sink.written == [0, 2, 4]
    assert (stats.received, stats.delivered, stats.failed, stats.retries) == (6, 3, 3, 0)
    assert stats.last_error == "event 5 is odd"
    assert "event 1 is odd (counted as failed, not retried)" in caplog.text


def test_events_a_result_leaves_out_are_counted_as_failed() -> None:
    class Forgetful(BaseSink):
        async def write_batch(self, events: list[Any]) -> BatchResult:
            return BatchResult(delivered=len(events) - 1)

    sink = Forgetful()
    for n in range(3):
        sink.enqueue(event(n))
    assert sink.flush(5)
    stats = sink.stats
    sink.stop()
    assert stats.delivered + stats.failed == 3 and stats.failed >= 1
    assert "delivered" in (stats.last_error or "")


REPORTS = {
    "more delivered than written": (lambda n: BatchResult(n + 5), 3, 0),
    "a negative count": (lambda n: BatchResult(-1), 0, 3),
    "more reasons than events": (lambda n: BatchResult(0, ("refused",) * (n + 2)), 0, 3),
    "a bare int over the size": (lambda n: n + 5, 3, 0),
    "a bare negative int": (lambda n: -1, 0, 3),
    "True, which is no count": (lambda n: True, 3, 0),
    "None": (lambda n: None, 3, 0),
}


@pytest.mark.parametrize("report", REPORTS.values(), ids=list(REPORTS))
def test_whatever_a_write_reports_each_event_is_counted_once(report: tuple[Any, int, int]) -> None:
    answer, delivered, failed = report

    class Reporting(BaseSink):
        async def write_batch(self, events: list[Any]) -> Any:
            return answer(len(events))

    sink = Reporting()
    for n in range(3):
        sink.enqueue(event(n))
    assert sink.flush(5)
    stats = sink.stats
    sink.stop()
    assert (stats.received, stats.delivered, stats.failed, stats.dropped) == (3, delivered, failed, 0)
