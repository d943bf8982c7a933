"""CPU per token of ``@streamll.instrument`` against ``dspy.streamify`` with ``StreamListener``s, sync and async.

    python benchmarks/bench_token_cpu.py [--tokens 400] [--rounds 5] [--sinks none,memory,redis,nats]

The offline LM server runs in a process of its own, so only the program's
process is measured: its CPU time (every thread: the sink's worker included)
per streamed token, for the same ChainOfThought reply. baseline: ``dspy.streamify``
with a listener on ``reasoning`` and ``answer`` (async: ``async for``; sync:
``async_streaming=False``). streamll: the instrumented program streaming the same
two fields to each sink (``flush()`` inside the timed part). Rounds alternate;
medians and ratios are printed (targets with a network sink: async <= 1.2, sync <= 1.0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

REDIS_URL = os.environ.get("STREAMLL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("STREAMLL_BENCH_NATS_URL", "nats://127.0.0.1:4222")
FIELDS = ("reasoning", "answer")


def serve(tokens: int) -> None:
    """The LM server process: print the API base, serve until stdin closes."""
    from streamll.testing import OfflineLMServer

    words = " ".join(f"word{index}" for index in range(tokens))
    with OfflineLMServer(answers={"reasoning": words, "answer": words}) as server:
        print(server.api_base, flush=True)
        sys.stdin.read()


def make_sink(kind: str) -> Any:
    if kind == "memory":
        from streamll import MemorySink

        return MemorySink()
    if kind == "redis":
        from streamll_redis import RedisSink

        return RedisSink(REDIS_URL, stream=f"streamll-bench-cpu:{uuid.uuid4().hex[:8]}")
    if kind == "nats":
        from streamll_nats import NatsSink

        tag = uuid.uuid4().hex[:8]
        return NatsSink(NATS_URL, subject=f"bench.cpu.{tag}", stream=f"BENCH_CPU_{tag}")
    raise SystemExit(f"unknown sink {kind!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=400, help="words per field in the reply")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sinks", default="none,memory,redis,nats")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    command = [sys.executable, __file__, "--serve", str(args.tokens)]
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        api_base = server.stdout.readline().strip()
        run(api_base, args)
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(10)


def run(api_base: str, args: argparse.Namespace) -> None:
    import dspy
    import streamll
    from dspy.streaming import StreamListener

    lm = dspy.LM("openai/offline", api_base=api_base, api_key="offline", cache=False, num_retries=0)
    dspy.configure(lm=lm, adapter=dspy.ChatAdapter())

    class Program(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cot = dspy.ChainOfThought("question -> answer")

        def forward(self, question: str) -> dspy.Prediction:
            return self.cot(question=question)

        async def aforward(self, question: str) -> dspy.Prediction:
            return await self.cot.acall(question=question)

    @streamll.instrument(stream_fields=list(FIELDS))
    class Instrumented(Program):
        pass

    plain = Program()
    listeners = [StreamListener(signature_field_name=name) for name in FIELDS]
    streaming_async = dspy.streamify(plain, stream_listeners=listeners)
    streaming_sync = dspy.streamify(
        plain, stream_listeners=[StreamListener(signature_field_name=name) for name in FIELDS], async_streaming=False
    )

    async def baseline_async() -> int:
        count = 0
        async for value in streaming_async(question="benchmark"):
            count += isinstance(value, dspy.streaming.StreamResponse)
        return count

    def baseline_sync() -> int:
        return sum(isinstance(v, dspy.streaming.StreamResponse) for v in streaming_sync(question="benchmark"))

    instrumented = Instrumented()

    def timed(call: Any) -> float:
        started = time.process_time()
        call()
        return time.process_time() - started

    sinks = {kind: (make_sink(kind) if kind != "none" else None) for kind in args.sinks.split(",")}
    results: dict[str, list[float]] = {"streamify async": [], "streamify sync": []}
    for kind in sinks:
        results[f"{kind} async"] = []
        results[f"{kind} sync"] = []
    tokens = asyncio.run(baseline_async())  # warm-up, and the token count per call
    baseline_sync()
    for sink in sinks.values():
        streamll.configure(sinks=[sink] if sink is not None else [])
        instrumented(question="warm-up")
        streamll.flush(30)
    for _ in range(args.rounds):
        results["streamify async"].append(timed(lambda: asyncio.run(baseline_async())))
        results["streamify sync"].append(timed(baseline_sync))
        for kind, sink in sinks.items():
            streamll.configure(sinks=[sink] if sink is not None else [])

            def run_async() -> None:
                asyncio.run(instrumented.acall(question="benchmark"))
                streamll.flush(30)

            def run_sync() -> None:
                instrumented(question="benchmark")
                streamll.flush(30)

            results[f"{kind} async"].append(timed(run_async))
            results[f"{kind} sync"].append(timed(run_sync))
            if hasattr(sink, "clear"):
                sink.clear()
    streamll.configure(sinks=None)
    for sink in sinks.values():
        if sink is not None:
            sink.stop()

    print(f"CPU per token (program process, all threads), {tokens} tokens per call, medians of {args.rounds} rounds")
    base = {mode: statistics.median(results[f"streamify {mode}"]) for mode in ("async", "sync")}
    for name, values in results.items():
        mode = name.rsplit(" ", 1)[1]
        mid = statistics.median(values)
        spread = f"{min(values) / tokens * 1e6:.1f}-{max(values) / tokens * 1e6:.1f}"
        target = ""
        if name.startswith(("redis", "nats")):
            target = "  (target <= 1.2)" if mode == "async" else "  (target <= 1.0)"
        print(f"  {name:<18} {mid / tokens * 1e6:7.1f} us/token  [{spread}]  ratio {mid / base[mode]:5.2f}{target}")


if __name__ == "__main__":
    main()
