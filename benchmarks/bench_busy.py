"""A CPU-bound program thread emitting 1,000 events/s: does delivery keep up? (e2e latency, consumer in another process)

    python benchmarks/bench_busy.py [--seconds 3] [--rounds 3]

The program thread spins in pure-Python work between events (it never sleeps),
so the sink's worker thread gets the GIL only when the program thread lets go.
Options measured, interleaved: ``none`` (the worker waits for the interpreter's
switch interval), ``yield`` (the default: ``enqueue`` hands the GIL to the
worker when events have waited 5 ms without the worker taking a batch) and
``switch-1ms`` (``sys.setswitchinterval(0.001)`` for the whole process, no
yield). Prints p50 / p99 of each (target p99 < 100 ms) and the program's own
progress (work units per second: what each option costs the program).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

REDIS_URL = os.environ.get("STREAMLL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
HERE = os.path.dirname(os.path.abspath(__file__))


def one_run(mode: str, seconds: float) -> tuple[float, float, float]:
    """p50 ms, p99 ms, work units per second, in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--run", mode, str(seconds)], capture_output=True, text=True, timeout=300
    )
    if out.returncode:
        raise SystemExit(out.stderr)
    p50, p99, work = json.loads(out.stdout.strip().splitlines()[-1])
    return p50, p99, work


def run(mode: str, seconds: float) -> None:
    import streamll.sinks.buffer as buffer
    from streamll.core.context import Execution
    from streamll.core.emitter import make_event
    from streamll.core.events import TokenEvent
    from streamll_redis import RedisSink

    if mode != "yield":
        buffer.STARVED_AFTER = float("inf")
    if mode == "switch-1ms":
        sys.setswitchinterval(0.001)
    count = int(1000 * seconds)
    stream = f"streamll-bench-busy:{uuid.uuid4().hex[:8]}"
    consumer = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "bench_latency.py"), "--consume", "redis", REDIS_URL, stream, str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert consumer.stdout is not None
    assert consumer.stdout.readline().strip() == "ready"
    sink = RedisSink(REDIS_URL, stream=stream, maxlen=0)
    sink.start()
    sink.flush(10)
    execution = Execution()
    work = 0
    started = time.monotonic()
    for index in range(count):
        target = started + index / 1000
        while time.monotonic() < target:
            for _ in range(100):
                work += 1
        event, _ = make_event(
            "token", {"t": time.monotonic_ns()}, execution=execution, cls=TokenEvent,
            token=" w", token_index=index, field="answer",
        )  # fmt: skip
        sink.enqueue(event)
    elapsed = time.monotonic() - started
    sink.flush(60)
    out, _ = consumer.communicate(timeout=120)
    sink.stop()
    import redis

    redis.Redis.from_url(REDIS_URL).delete(stream)
    delays = sorted(delay / 1e6 for delay in json.loads(out.strip().splitlines()[-1])[20:])
    print(json.dumps([delays[len(delays) // 2], delays[int(len(delays) * 0.99)], work / elapsed]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--run", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run(args.run[0], float(args.run[1]))
        return
    modes = ("none", "yield", "switch-1ms")
    results: dict[str, list[tuple[float, float, float]]] = {mode: [] for mode in modes}
    for _ in range(args.rounds):
        for mode in modes:
            results[mode].append(one_run(mode, args.seconds))
    print(f"CPU-bound program thread, 1,000 events/s to Redis, e2e ms; medians of {args.rounds} interleaved rounds")
    base_work = statistics.median(work for _, _, work in results["none"])
    for mode in modes:
        p50 = statistics.median(r[0] for r in results[mode])
        p99 = statistics.median(r[1] for r in results[mode])
        work = statistics.median(r[2] for r in results[mode])
        rounds = ", ".join(f"{r[0]:.1f}/{r[1]:.1f}" for r in results[mode])
        print(
            f"  {mode:<11} p50 {p50:7.1f}  p99 {p99:7.1f} (target < 100)  program work vs none {work / base_work:5.2f}"
            f"   rounds [{rounds}]"
        )


if __name__ == "__main__":
    main()
