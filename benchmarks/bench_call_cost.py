"""Fixed cost of an instrumented call, and how soon a field's last token arrives.

1. Per-call cost: the same short ``Predict`` program called plain, under a bare
   ``@streamll.instrument`` (lifecycle events, nothing streamed) and with a
   chosen field (the request streams). Process CPU time per call (sink worker
   included), rounds interleaved; prints medians with spread and the ratio.
2. Last-token latency: a ChainOfThought reply streamed with a delay per token;
   only ``reasoning`` is chosen. From the start of the call, when does the last
   ``reasoning`` token reach a sink, against DSPy's own ``StreamListener``
   (``dspy.streamify``) on the plain program, in the same run.

The offline LM server runs in its own process.

    python benchmarks/bench_call_cost.py [--calls 40] [--rounds 7] [--delay 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy
import streamll
from streamll import MemorySink

SERVER = """
import sys, time
from streamll.testing import OfflineLMServer
server = OfflineLMServer(token_delay=float(sys.argv[1]), answers={"answer": sys.argv[2]}).start()
print(server.api_base, flush=True)
sys.stdin.read()
"""


class Program(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.predict(question=question)


class Reasoner(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cot = dspy.ChainOfThought("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.cot(question=question)


Bare = streamll.instrument(type("Bare", (Program,), {}))
Streamed = streamll.instrument(stream_fields=["answer"])(type("Streamed", (Program,), {}))
ReasoningOnly = streamll.instrument(stream_fields=["reasoning"])(type("ReasoningOnly", (Reasoner,), {}))


class StampingSink(MemorySink):
    """Notes when the last ``reasoning`` token is handed to the sink."""

    last_token_at = 0.0

    def enqueue(self, event: Any) -> Any:
        if getattr(event, "field", None) == "reasoning" and event.finish_reason is not None:
            self.last_token_at = time.perf_counter()
        return super().enqueue(event)


def start_server(delay: float, answer: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(delay), answer], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def lm(api_base: str) -> dspy.LM:
    return dspy.LM("openai/offline", api_base=api_base, api_key="x", cache=False, num_retries=0)


def cpu_per_call(module: Any, calls: int) -> float:
    started = time.process_time()
    for index in range(calls):
        module(question=f"q{index}")
    streamll.flush()
    return (time.process_time() - started) / calls


def spread(values: list[float]) -> str:
    low, high = min(values) * 1000, max(values) * 1000
    return f"median {statistics.median(values) * 1000:7.3f} ms  (min {low:.3f}, max {high:.3f})"


def per_call_cost(api_base: str, calls: int, rounds: int) -> None:
    sink = MemorySink()
    streamll.configure(sinks=[sink])
    programs = {"plain": Program(), "@instrument (bare)": Bare(), "@instrument(stream_fields=['answer'])": Streamed()}
    times: dict[str, list[float]] = {name: [] for name in programs}
    with dspy.context(lm=lm(api_base), adapter=dspy.ChatAdapter()):
        for module in programs.values():
            cpu_per_call(module, 5)  # warm-up
        for _ in range(rounds):
            for name, module in programs.items():
                times[name].append(cpu_per_call(module, calls))
                sink.clear()
    streamll.configure(sinks=None)
    sink.stop()
    plain = statistics.median(times["plain"])
    print(f"per-call CPU time, {calls} calls x {rounds} interleaved rounds (server in its own process)")
    for name, values in times.items():
        extra = statistics.median(values) - plain
        print(f"  {name:40s} {spread(values)}  +{extra * 1000:.3f} ms  ratio {statistics.median(values) / plain:.3f}")


def fixed_cost_without_network(calls: int, rounds: int) -> None:
    """The same comparison with DSPy's DummyLM (no network, no sink): streamll's own work per call."""
    from dspy.utils.dummies import DummyLM

    streamll.configure(sinks=[])
    plain, bare = Program(), Bare()
    times: dict[str, list[float]] = {"plain": [], "bare": []}
    reply = [{"answer": "Machine learning is a subset of artificial intelligence."}] * (calls * (rounds + 1) * 2 + 10)
    with dspy.context(lm=DummyLM(reply), adapter=dspy.ChatAdapter()):
        for module in (plain, bare):
            cpu_per_call(module, 5)
        for _ in range(rounds):
            for name, module in (("plain", plain), ("bare", bare)):
                started = time.thread_time()
                for index in range(calls):
                    module(question=f"q{index}")
                times[name].append((time.thread_time() - started) / calls)
    streamll.configure(sinks=None)
    extra = [b - p for p, b in zip(times["plain"], times["bare"], strict=True)]
    quartiles = statistics.quantiles(extra, n=4)
    print(f"fixed cost without network (DummyLM, no sink, caller thread CPU, {rounds} paired rounds)")
    print(f"  plain {spread(times['plain'])}")
    print(f"  bare  {spread(times['bare'])}")
    print(
        f"  extra per call: median {statistics.median(extra) * 1e6:.0f} us "
        f"(quartiles {quartiles[0] * 1e6:.0f}-{quartiles[2] * 1e6:.0f} us), "
        f"ratio {statistics.median(times['bare']) / statistics.median(times['plain']):.3f}"
    )


def last_token_latency(api_base: str, rounds: int) -> None:
    sink = StampingSink()
    streamll.configure(sinks=[sink])
    listener_times: list[float] = []
    streamll_times: list[float] = []
    plain = Reasoner()
    instrumented = ReasoningOnly()

    async def listen() -> float:
        listener = dspy.streaming.StreamListener(signature_field_name="reasoning")
        program = dspy.streamify(plain, stream_listeners=[listener])
        started = time.perf_counter()
        last = 0.0
        async for item in program(question="latency"):
            if isinstance(item, dspy.streaming.StreamResponse) and item.is_last_chunk:
                last = time.perf_counter()
        return last - started

    with dspy.context(lm=lm(api_base), adapter=dspy.ChatAdapter()):
        for _ in range(rounds):
            listener_times.append(asyncio.run(listen()))
            started = time.perf_counter()
            instrumented(question="latency")
            streamll_times.append(sink.last_token_at - started)
            sink.clear()
    streamll.configure(sinks=None)
    sink.stop()
    print(f"last 'reasoning' token after the call starts ({rounds} interleaved rounds)")
    print(f"  DSPy StreamListener (streamify)  {spread(listener_times)}")
    print(f"  streamll token event             {spread(streamll_times)}")
    difference = statistics.median(streamll_times) - statistics.median(listener_times)
    print(f"  difference streamll - listener: {difference * 1000:+.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--delay", type=float, default=0.02, help="seconds per token in the latency run")
    args = parser.parse_args()
    fast, fast_base = start_server(0.0, "Machine learning is a subset of artificial intelligence.")
    slow, slow_base = start_server(args.delay, " ".join(["word"] * 30))
    try:
        per_call_cost(fast_base, args.calls, args.rounds)
        fixed_cost_without_network(100, max(args.rounds, 15))
        last_token_latency(slow_base, args.rounds)
    finally:
        for process in (fast, slow):
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    main()
