"""What the transport benchmarks share: the events, timing a sink from enqueue to flush, and the report.

Each ``bench_<transport>.py`` times its sink and the raw client writing the
same message bodies, round by round, and prints both rates and the ratio.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

from streamll.core.context import Execution
from streamll.core.emitter import make_event
from streamll.core.events import Event, TokenEvent
from streamll.core.serialization import event_to_dict
from streamll.sinks.base import BaseSink


def token_events(count: int, executions: int = 1) -> list[Event]:
    """``count`` token events of ``executions`` interleaved executions, like streamed answers."""
    runs = [Execution() for _ in range(executions)]
    return [
        make_event(
            "token",
            execution=runs[index % executions],
            cls=TokenEvent,
            token=f" word{index}",
            token_index=index // executions,
            field="answer",
        )[0]
        for index in range(count)
    ]


def time_sink(
    sink: BaseSink,
    events: Sequence[Event],
    *,
    warmup: Event | None = None,
    timeout: float = 120.0,
    retries_ok: bool = True,
) -> float:
    """Seconds from the first ``enqueue`` of ``events`` until ``flush()`` returns.

    The sink is started and idle (connected, and with ``warmup`` that event
    delivered) before the clock starts, and stopped after. Exits when an
    event was lost, or, unless ``retries_ok``, when a batch had to be retried.
    """
    sink.start()
    expected = len(events)
    if warmup is not None:
        sink.enqueue(warmup)
        expected += 1
    if not sink.flush(30):
        raise SystemExit(f"{sink.name} did not connect: {sink.stats}")
    started = time.perf_counter()
    for event in events:
        sink.enqueue(event)
    if not sink.flush(timeout):
        raise SystemExit(f"{sink.name} did not deliver within {timeout:g}s: {sink.stats}")
    elapsed = time.perf_counter() - started
    stats = sink.stats
    sink.stop()
    if stats.delivered != expected or stats.dropped or (stats.write_errors and not retries_ok):
        raise SystemExit(f"{sink.name} lost or retried events: {stats}")
    return elapsed


def report(title: str, *, raw: str, raw_rates: Sequence[float], sink: str, sink_rates: Sequence[float]) -> None:
    """Print the median events/s of each side (spread: min-max of the rounds) and the ratio of medians."""
    raw_mid, sink_mid = statistics.median(raw_rates), statistics.median(sink_rates)
    width = max(len(raw), len(sink), len("ratio sink/raw")) + 2
    print(title)
    print(f"  {raw + ':':<{width}}{raw_mid:>10,.0f} events/s  median (rounds: {_rates(raw_rates)})")
    print(f"  {sink + ':':<{width}}{sink_mid:>10,.0f} events/s  median (rounds: {_rates(sink_rates)})")
    print(f"  {'ratio sink/raw:':<{width}}{sink_mid / raw_mid:>10.2f}  (target >= 0.90)")


def json_bodies(events: Sequence[Event]) -> list[dict[str, object]]:
    """Each event as the plain dict a raw client would encode with ``json.dumps`` (inside its timed loop)."""
    return [event_to_dict(event) for event in events]


def _rates(rates: Sequence[float]) -> str:
    return ", ".join(f"{rate:,.0f}" for rate in rates)
