"""Load for the delivery tests: a burst as fast as the program can emit, or a steady rate across an outage."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from streamll.core.context import Execution
from streamll.core.emitter import make_event
from streamll.core.events import TokenEvent
from streamll.sinks.base import BaseSink

BURST = 20_000
"""Events of the default suite's burst (the ``slow`` session sends 200,000)."""
SLOW_BURST = 200_000


def token(execution: Execution, index: int) -> TokenEvent:
    event, _ = make_event(
        "token", execution=execution, cls=TokenEvent, token=f" word{index}", token_index=index, field="answer"
    )
    assert isinstance(event, TokenEvent)
    return event


def burst(sink: BaseSink, count: int, executions: int = 8) -> None:
    """Hand ``count`` token events of ``executions`` interleaved executions to ``sink`` as fast as possible."""
    runs = [Execution() for _ in range(executions)]
    enqueue = sink.enqueue
    for index in range(count):
        enqueue(token(runs[index % executions], index))


class SteadyLoad:
    """Emits token events at ``rate`` per second on a thread of its own until stopped."""

    def __init__(self, sink: BaseSink, rate: int) -> None:
        self.sink = sink
        self.rate = rate
        self.emitted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-load", daemon=True)

    def __enter__(self) -> SteadyLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        execution = Execution()
        started = time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while self.emitted < due:
                self.sink.enqueue(token(execution, self.emitted))
                self.emitted += 1
            time.sleep(0.002)


OUTAGE_STARTS: dict[int, int] = {}
"""``id(sink)`` -> the first ``token_index`` emitted after the broker had stopped."""


def outage(sink: BaseSink, rate: int, seconds: float, stop: Callable[[], None], start: Callable[[], None]) -> int:
    """Emit at ``rate`` for 1 s, with the broker down for ``seconds``, and 1 s after; returns events emitted.

    ``token_index`` of the events counts 0, 1, ...; :attr:`SteadyLoad.at_stop` is the first index emitted
    once the broker had stopped (kept in ``OUTAGE_STARTS``, keyed by sink).
    """
    with SteadyLoad(sink, rate) as load:
        time.sleep(1.0)
        stop()
        OUTAGE_STARTS[id(sink)] = load.emitted
        down_until = time.monotonic() + seconds
        while time.monotonic() < down_until:
            time.sleep(0.05)
        start()
        time.sleep(1.0)
    return load.emitted
