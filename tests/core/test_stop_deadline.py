"""Retrying against the clock: backoff that grows per failed write, and a stop deadline the worker keeps by itself."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from streamll.core.events import Event
from streamll.sinks.base import BaseSink
from streamll.sinks.worker import worker

from tests.core.support import FlakySink, GatedSink, event
from tests.helpers import wait_until

T = TypeVar("T")


def on_the_worker(call: Callable[[], T]) -> T:
    """``call()`` run by code on the worker loop (where ``stop`` cannot wait, so the worker keeps the deadline)."""

    async def run() -> T:
        return call()

    return worker.submit(run()).result(5)


class TimedFlaky(FlakySink):
    """Fails its first writes, noting when each attempt was made."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.attempts: list[float] = []

    async def write_batch(self, events: list[Event]) -> int | None:
        self.attempts.append(time.monotonic())
        return await super().write_batch(events)


def test_the_wait_between_retries_doubles_per_failed_write(
    sinks: list[BaseSink], caplog: pytest.LogCaptureFixture
) -> None:
    sink = TimedFlaky(failures=3, name="timed")
    sink.retry_backoff, sink.retry_backoff_max = 0.1, 1.6
    sinks.append(sink)
    with caplog.at_level(logging.WARNING, logger="streamll"):
        sink.enqueue(event(0))
        assert sink.flush(timeout=10)
    assert len(sink.attempts) == 4 and sink.stats.retries == 3
    assert sink.stats.last_error == "write: ConnectionError: destination down"
    assert [record.getMessage() for record in caplog.records] == [  # the same message: logged once a second
        "streamll sink timed: write failed (ConnectionError: destination down); retrying with backoff"
    ]
    gaps = [later - earlier for earlier, later in zip(sink.attempts, sink.attempts[1:], strict=False)]
    assert gaps[2] >= 0.4 * 0.75  # the third wait: 0.1 doubled twice (less at most the jitter)
    assert sum(gaps) < 1.5  # 0.1 + 0.2 + 0.4, each +-25%: not skipping ahead


def test_the_wait_between_retries_stops_growing_at_retry_backoff_max(sinks: list[BaseSink]) -> None:
    sink = TimedFlaky(failures=4)
    sink.retry_backoff, sink.retry_backoff_max = 0.1, 0.15
    sinks.append(sink)
    sink.enqueue(event(0))
    assert sink.flush(timeout=10)
    assert len(sink.attempts) == 5
    assert sink.attempts[-1] - sink.attempts[0] < 0.95  # at most 0.125 + 3 * 0.15; uncapped it would be over 1.1


def test_a_stop_requested_on_the_worker_loop_cuts_the_backoff_at_its_deadline(
    sinks: list[BaseSink], caplog: pytest.LogCaptureFixture
) -> None:
    sink = FlakySink(name="cut")  # never comes back
    sink.retry_backoff = sink.retry_backoff_max = 30.0
    sinks.append(sink)
    sink.enqueue(event(0))
    wait_until(lambda: sink.stats.write_errors >= 1, what="the first write to fail")
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="streamll"):
        assert on_the_worker(lambda: sink.stop(timeout=0.05)) is False  # returns at once: the worker drains alone
        # the worker logs what it gave up after it marks the sink stopped: wait for the log, not for is_running
        wait_until(
            lambda: any(r.levelno >= logging.ERROR for r in caplog.records),
            what="the worker to give up at the deadline",
        )
    assert not sink.is_running
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [  # no crash nor cancel
        "streamll sink cut: stopped with 1 undelivered event(s) (counted as dropped)"
    ]
    assert time.monotonic() - started < 0.9  # not the 30 s backoff, nor any fixed wait
    stats = sink.stats
    assert (stats.delivered, stats.dropped) == (0, 1)


class FailingGate(GatedSink):
    """Each write waits for the test's permit, then fails."""

    async def write_batch(self, events: list[Event]) -> int | None:
        await super().write_batch(events)
        raise ConnectionError("lost")


def test_a_write_failing_after_the_stop_deadline_is_not_retried(sinks: list[BaseSink]) -> None:
    sink = FailingGate()
    sinks.append(sink)
    sink.enqueue(event(0))
    wait_until(lambda: sink.started == 1, what="the write to start")
    asked = time.monotonic()
    assert on_the_worker(lambda: sink.stop(timeout=0.05)) is False
    wait_until(lambda: time.monotonic() >= asked + 0.1, what="the stop deadline to pass")
    sink.allow(1)
    wait_until(lambda: not sink.is_running, what="the worker to stop")
    stats = sink.stats
    assert (stats.write_errors, stats.retries, stats.dropped) == (1, 0, 1)
    assert sink.started == 1


class CloseFails(FlakySink):
    async def aclose(self) -> None:
        raise RuntimeError("already gone")


def test_a_close_failing_after_a_write_error_is_logged_for_debugging_and_the_retry_goes_on(
    sinks: list[BaseSink], caplog: pytest.LogCaptureFixture
) -> None:
    sink = CloseFails(failures=1, name="closer")
    sinks.append(sink)
    with caplog.at_level(logging.DEBUG, logger="streamll"):
        sink.enqueue(event(0))
        assert sink.flush(timeout=10)
    assert sink.stats.delivered == 1 and sink.stats.reconnects == 1
    debug = [record.getMessage() for record in caplog.records if record.levelno == logging.DEBUG]
    assert "streamll: closer: aclose after an error raised RuntimeError('already gone')" in debug
