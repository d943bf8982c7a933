"""Cost of a ``dspy.Tool`` call inside an instrumented module (tool events on), against the plain module.

A module whose ``forward`` calls a trivial tool ``--calls`` times is run plain,
instrumented (``tool_start`` / ``tool_end`` plus DSPy's default status lines,
to a MemorySink) and instrumented with ``status_messages=False``. Process CPU
time per tool call (the sink worker included), rounds interleaved; prints
medians with spread and the added microseconds per call. A real tool (an HTTP
request, a database query) takes milliseconds: compare the added cost to that.

    python benchmarks/bench_tool_calls.py [--calls 500] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import dspy
import streamll
from streamll import MemorySink


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def program(calls: int, mode: str) -> Any:
    tool = dspy.Tool(add)

    class Calls(dspy.Module):
        def forward(self) -> int:
            return sum(tool(a=index, b=1) for index in range(calls))

    if mode == "plain":
        return Calls()
    return streamll.instrument(status_messages=(mode == "events+status"))(Calls)()


def per_call_us(module: Any, calls: int, sink: MemorySink) -> float:
    start = time.process_time()
    module()
    assert sink.flush(30)
    elapsed = time.process_time() - start
    sink.clear()
    return elapsed / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    sink = MemorySink(name="bench-tools")
    streamll.configure(sinks=[sink])
    modes = ("plain", "events", "events+status")
    modules = {mode: program(args.calls, mode) for mode in modes}
    for module in modules.values():  # warm up: imports, first-call costs
        per_call_us(module, args.calls, sink)
    samples: dict[str, list[float]] = {mode: [] for mode in modes}
    for _ in range(args.rounds):
        for mode in modes:
            samples[mode].append(per_call_us(modules[mode], args.calls, sink))
    plain = statistics.median(samples["plain"])
    print(f"{args.calls} tool calls per run, {args.rounds} rounds interleaved; CPU time per tool call")
    for mode in modes:
        values = samples[mode]
        median = statistics.median(values)
        print(
            f"  {mode:14s} median {median:7.1f} us  (min {min(values):.1f}, max {max(values):.1f})"
            f"  ratio {median / plain:5.2f}  added {median - plain:6.1f} us"
        )
    sink.stop()


if __name__ == "__main__":
    main()
