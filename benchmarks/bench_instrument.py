"""Per-token cost of ``@streamll.instrument`` over plain ``dspy.streamify`` on the same program.

Both stream the same long ChainOfThought reply from the offline LM server
(no token delay); the baseline consumes DSPy's raw chunks from
``dspy.streamify``, the instrumented run parses them into token events and
hands them to a sink. Prints medians, the per-token difference and the ratio.

    python benchmarks/bench_instrument.py [--tokens 2000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy
import streamll
from streamll import MemorySink
from streamll.testing import OfflineLMServer


class Program(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cot = dspy.ChainOfThought("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.cot(question=question)


@streamll.instrument(stream_fields=["reasoning", "answer"])
class Instrumented(Program):
    pass


def run_streamify(program: Program) -> int:
    streaming = dspy.streamify(program)

    async def consume() -> int:
        chunks = 0
        async for value in streaming(question="benchmark"):
            if not isinstance(value, dspy.Prediction):
                chunks += 1
        return chunks

    return asyncio.run(consume())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=2000, help="words per field in the reply")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    words = " ".join(f"word{index}" for index in range(args.tokens))
    with OfflineLMServer(answers={"reasoning": words, "answer": words}) as server:
        dspy.configure(lm=server.lm(), adapter=dspy.ChatAdapter())
        sink = MemorySink()
        streamll.configure(sinks=[sink])
        plain, instrumented, silent = Program(), Instrumented(), Instrumented()
        baseline_times: list[float] = []
        streamll_times: list[float] = []
        bridge_times: list[float] = []
        chunks = run_streamify(plain)  # warm-up, and the chunk count
        instrumented(question="warm-up")
        streamll.flush()
        for _ in range(args.rounds):
            started = time.perf_counter()
            run_streamify(plain)
            baseline_times.append(time.perf_counter() - started)

            sink.clear()
            started = time.perf_counter()
            instrumented(question="benchmark")
            streamll.flush()
            streamll_times.append(time.perf_counter() - started)

            streamll.configure(sinks=[])
            started = time.perf_counter()
            silent(question="benchmark")
            bridge_times.append(time.perf_counter() - started)
            streamll.configure(sinks=[sink])
        tokens = len(sink.tokens())
        streamll.configure(sinks=None)
        sink.stop()
    baseline = statistics.median(baseline_times)
    with_sink = statistics.median(streamll_times)
    bridge = statistics.median(bridge_times)
    print(f"reply: {chunks} LM chunks, {tokens} token events per call; median of {args.rounds} rounds")
    print(f"dspy.streamify (baseline)          {baseline * 1000:8.1f} ms  {baseline / chunks * 1e6:6.1f} us/chunk")
    print(f"@instrument, no sink               {bridge * 1000:8.1f} ms  {bridge / chunks * 1e6:6.1f} us/chunk")
    print(f"@instrument + MemorySink + flush   {with_sink * 1000:8.1f} ms  {with_sink / chunks * 1e6:6.1f} us/chunk")
    print(
        f"per-token cost over streamify: {(with_sink - baseline) / chunks * 1e6:.1f} us (with sink), "
        f"{(bridge - baseline) / chunks * 1e6:.1f} us (bridge only)"
    )
    print(f"ratio instrument/streamify: {with_sink / baseline:.2f} (with sink), {bridge / baseline:.2f} (bridge only)")


if __name__ == "__main__":
    main()
