"""The program thread's cost per token: building a token event and handing it to a sink.

    python benchmarks/bench_hotpath.py [--tokens 20000] [--burst 200000] [--rounds 5] [--url redis://...]

build: ``make_event`` of a token event (a model built without validation) vs the
same event validated by pydantic (``TokenEvent(...)``), and the whole per-token
path, ``TokenRun.emit_token`` (a ``TokenRecord`` dispatched to the execution's
sink) vs the same token as ``make_event`` + ``dispatch`` of a model (what every
token cost before the record); interleaved rounds, median us per token (target:
build + enqueue <= 2 us, measured with the sink's worker parked on a write so
that only the program thread's work is timed, with the module's own sinks and with
sinks from ``streamll.configure``; the unparked figure adds the worker encoding the
same burst on the other core).
hand-off: every ``sink.enqueue`` timed during a burst of ``--burst`` token events
to a live RedisSink (p50 / p99 / p99.9 / max; target p99.9 < 1 ms), with the
events delivered and none dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time
import uuid
from types import SimpleNamespace

import streamll
from streamll.core.context import Execution
from streamll.core.emitter import dispatch, make_event
from streamll.core.events import TokenEvent
from streamll.sinks.base import BaseSink
from streamll.streaming.bridge import TokenRun

REDIS_URL = os.environ.get("STREAMLL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


class NullSink(BaseSink):
    """Accepts every batch at once, records as they are (like a transport): isolates the program thread's share."""

    encodes_records = True

    async def write_batch(self, events: list[object]) -> int | None:
        return None


class ParkedSink(NullSink):
    """A NullSink whose writes wait for :meth:`release`: its worker sleeps while the program thread is timed.

    Like a sink whose first write is still on the network: every other token waits in the buffer, so the
    timed loop measures the program thread's own work, not the worker encoding on the other core at once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    async def write_batch(self, events: list[object]) -> int | None:
        await asyncio.to_thread(self.gate.wait)
        return None

    def release(self) -> None:
        self.gate.set()
        self.flush(60)
        self.gate.clear()


def build_fast(execution: Execution, count: int) -> float:
    started = time.thread_time()
    for index in range(count):
        make_event("token", execution=execution, cls=TokenEvent, token=" word", token_index=index, field="answer")
    return (time.thread_time() - started) / count * 1e6


def build_validated(execution: Execution, count: int) -> float:
    started = time.thread_time()
    for index in range(count):
        TokenEvent(
            event_type="token",
            execution_id=execution.execution_id,
            parent_id=None,
            sequence=execution.next_sequence(),
            data={},
            tags={},
            token=" word",
            token_index=index,
            field="answer",
        )
    return (time.thread_time() - started) / count * 1e6


def build_and_enqueue(sink: BaseSink, execution: Execution, count: int) -> float:
    enqueue = sink.enqueue
    started = time.thread_time()
    for index in range(count):
        event, _ = make_event(
            "token", execution=execution, cls=TokenEvent, token=" word", token_index=index, field="answer"
        )
        enqueue(event)
    elapsed = time.thread_time() - started  # the program thread's CPU only (the worker's is its own)
    sink.flush(60)
    return elapsed / count * 1e6


CALL = SimpleNamespace(
    state=SimpleNamespace(name="QA.predict", path=None, attempt=None, field_types={}),
    parent_id="0" * 32,
    tags={"user_id": "u1"},
    extra=None,
    lanes={},
)
"""What ``emit_token`` reads from the LM call it streams: predictor name, LM span, tags."""


def emit_token_path(sink: BaseSink, count: int) -> float:
    """``TokenRun.emit_token``: a token record dispatched to the execution's sink (the path every token takes)."""
    run = TokenRun(Execution(sinks=(sink,)))
    emit = run.emit_token
    started = time.thread_time()
    for index in range(count):
        emit(CALL, "answer", " word", index, None, "lm")  # type: ignore[arg-type]
    elapsed = time.thread_time() - started
    sink.flush(60)
    return elapsed / count * 1e6


def emit_token_parked(sink: ParkedSink, count: int, *, configured: bool = False) -> float:
    """``TokenRun.emit_token`` while the sink's worker waits on a write: the program thread's work alone.

    ``configured``: the sink comes from ``streamll.configure(sinks=[...])`` rather than the module's own.
    """
    if configured:
        streamll.configure(sinks=[sink])
    run = TokenRun(Execution(sinks=None if configured else (sink,)))
    emit = run.emit_token
    emit(CALL, "answer", " word", 0, None, "lm")  # type: ignore[arg-type]  # the write the worker then waits on
    assert sink.flush(0.5) is False  # the worker holds that write: it takes no CPU while the loop runs
    started = time.thread_time()
    for index in range(1, count + 1):
        emit(CALL, "answer", " word", index, None, "lm")  # type: ignore[arg-type]
    elapsed = time.thread_time() - started
    sink.release()
    if configured:
        streamll.configure(sinks=None)
    return elapsed / count * 1e6


def model_path(sink: BaseSink, count: int) -> float:
    """The same token as a model: ``make_event`` + ``dispatch`` (the per-token path before token records)."""
    execution = Execution(sinks=(sink,))
    started = time.thread_time()
    for index in range(count):
        event, _ = make_event(
            "token", {"predictor": "QA.predict", "source": "lm"}, execution=execution, parent_id=CALL.parent_id,
            cls=TokenEvent, tags=CALL.tags, token=" word", token_index=index, field="answer", finish_reason=None,
            module_name="QA.predict", operation="token",
        )  # fmt: skip
        dispatch(event, execution)
    elapsed = time.thread_time() - started
    sink.flush(60)
    return elapsed / count * 1e6


def hand_off(count: int) -> list[float]:
    """Microseconds of each ``enqueue`` during a burst to a live Redis sink."""
    from streamll_redis import RedisSink

    sink = RedisSink(REDIS_URL, stream=f"streamll-bench-hotpath:{uuid.uuid4().hex[:8]}", maxlen=0)
    sink.start()
    if not sink.flush(10):
        raise SystemExit(f"redis at {REDIS_URL} did not answer: {sink.stats}")
    execution = Execution()
    events = [
        make_event("token", execution=execution, cls=TokenEvent, token=f" w{i}", token_index=i, field="answer")[0]
        for i in range(count)
    ]
    timings = [0.0] * count
    clock = time.perf_counter_ns
    enqueue = sink.enqueue
    for index, event in enumerate(events):
        started = clock()
        enqueue(event)
        timings[index] = (clock() - started) / 1000
    del events
    if not sink.flush(300):
        raise SystemExit(f"{sink.name} did not deliver the burst: {sink.stats}")
    stats = sink.stats
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.delete(sink.stream)
    client.close()
    sink.stop()
    if stats.dropped or stats.delivered != count + 0:
        raise SystemExit(f"the burst lost events: {stats}")
    return timings


def pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=20_000)
    parser.add_argument("--burst", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    execution = Execution()
    fast: list[float] = []
    validated: list[float] = []
    enqueued: list[float] = []
    modelled: list[float] = []
    recorded: list[float] = []
    parked: list[float] = []
    configured: list[float] = []
    sink = NullSink()
    sink.start()
    parked_sink = ParkedSink()
    parked_sink.start()
    for _ in range(args.rounds):
        fast.append(build_fast(execution, args.tokens))
        validated.append(build_validated(execution, args.tokens))
        enqueued.append(build_and_enqueue(sink, execution, args.tokens))
        modelled.append(model_path(sink, args.tokens))
        recorded.append(emit_token_path(sink, args.tokens))
        parked.append(emit_token_parked(parked_sink, args.tokens))
        configured.append(emit_token_parked(parked_sink, args.tokens, configured=True))
    sink.stop()
    parked_sink.stop()

    def show(values: list[float]) -> str:
        return f"{statistics.median(values):6.2f} us  (rounds: {', '.join(f'{v:.2f}' for v in values)})"

    print(f"hot path, program-thread CPU per token, median of {args.rounds} interleaved rounds of {args.tokens:,}")
    print(f"  TokenEvent(...) validated (before):      {show(validated)}")
    print(f"  make_event (model, not validated):       {show(fast)}")
    print(f"  make_event + enqueue (NullSink):         {show(enqueued)}")
    print(f"  ratio make_event / validated:            {statistics.median(fast) / statistics.median(validated):6.2f}")
    print("the per-token path, built + dispatched + enqueued (NullSink):")
    print(f"  model: make_event + dispatch (before):   {show(modelled)}")
    print(f"  TokenRun.emit_token (token record):      {show(recorded)}   (worker encoding at the same time)")
    print(f"  the same, the sink's worker parked:      {show(parked)}   target <= 2 us")
    print(f"  the same, sinks from configure():        {show(configured)}   target <= 2 us")
    ratio = statistics.median(recorded) / statistics.median(modelled)
    print(f"  ratio emit_token / model:                {ratio:6.2f}")
    timings = hand_off(args.burst)
    print(f"hand-off during a {args.burst:,}-event burst to a live RedisSink (enqueue only, wall clock):")
    print(
        f"  p50 {pct(timings, 0.5):.2f} us  p99 {pct(timings, 0.99):.2f} us  p99.9 {pct(timings, 0.999):.1f} us"
        f"  max {max(timings) / 1000:.1f} ms   target p99.9 < 1000 us; all {args.burst:,} delivered, none dropped"
    )


if __name__ == "__main__":
    main()
