"""Running the Node.js consumers in ``interop/`` and checking what they report."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy
import streamll
from streamll.testing import OfflineLMServer

from tests.helpers import skip_or_fail

INTEROP_DIR = Path(__file__).resolve().parents[2] / "interop"
REQUIRED_MODULES = ("ajv", "ajv-formats", "kafkajs", "nats", "redis")


def node_unavailable(why: str) -> None:
    """Fail under CI (the set-up must install the consumers), skip elsewhere."""
    skip_or_fail(f"Node.js consumers unavailable: {why}")


@dataclass
class ConsumerRun:
    """What one run of a Node consumer printed."""

    returncode: int
    summary: dict[str, Any]
    stderr: str

    def explain(self) -> str:
        """Everything worth seeing when an assertion fails."""
        return f"exit {self.returncode}\nsummary: {json.dumps(self.summary, indent=1)}\nstderr: {self.stderr}"


class NodeConsumers:
    """Runs the scripts in ``interop/`` and parses their JSON output."""

    def __init__(self, node: str) -> None:
        self.node = node

    def command(self, script: str, *args: str) -> list[str]:
        """The command line for ``interop/<script>``."""
        return [self.node, str(INTEROP_DIR / script), *args]

    def execute(
        self, script: str, *args: str, stdin: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``interop/<script>`` with ``args``; its output as text."""
        return self.execute_node(str(INTEROP_DIR / script), *args, stdin=stdin, timeout=timeout)

    def execute_node(
        self, *args: str, stdin: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``node`` with ``args`` in ``interop/``; its output as text."""
        return subprocess.run(
            [self.node, *args], cwd=INTEROP_DIR, input=stdin, capture_output=True, text=True, timeout=timeout
        )

    def run(self, script: str, *args: str, timeout: float = 30.0) -> ConsumerRun:
        """Run a consumer to completion (``--timeout`` is passed on, with a margin for the process)."""
        result = self.execute(script, *args, "--timeout", str(timeout), timeout=timeout + 30)
        return self.parse(result.returncode, result.stdout, result.stderr)

    def start(self, script: str, *args: str, timeout: float = 30.0) -> subprocess.Popen[str]:
        """Start a consumer in the background (collect it with :meth:`wait`)."""
        return subprocess.Popen(
            self.command(script, *args, "--timeout", str(timeout)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait(self, process: subprocess.Popen[str], timeout: float = 60.0) -> ConsumerRun:
        """Wait for a consumer started with :meth:`start`."""
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        return self.parse(process.returncode, stdout, stderr)

    @staticmethod
    def parse(returncode: int, stdout: str, stderr: str) -> ConsumerRun:
        lines = [line for line in stdout.splitlines() if line.strip()]
        try:
            summary = json.loads(lines[-1]) if lines else {}
        except ValueError:
            summary = {"unparsed_stdout": stdout}
        return ConsumerRun(returncode, summary, stderr)


def make_program(sinks: Sequence[Any], stream_fields: Sequence[str], *, reasoning: bool = False) -> dspy.Module:
    """``QA``: an instrumented module answering a question (with ChainOfThought when ``reasoning``)."""

    @streamll.instrument(stream_fields=list(stream_fields), sinks=list(sinks))
    class QA(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            predictor = dspy.ChainOfThought if reasoning else dspy.Predict
            self.predict = predictor("question -> answer")

        def forward(self, question: str) -> dspy.Prediction:
            return self.predict(question=question)

    return QA()


CAPITALS = ("Paris is the capital of France.", "Rome is the capital of Italy.")
"""The answers of :func:`run_capitals`' two executions."""


def run_capitals(sinks: Sequence[streamll.BaseSink], lm_server: OfflineLMServer) -> list[dspy.Prediction]:
    """Two executions of ``QA`` streaming ``answer`` (one per answer in :data:`CAPITALS`) to ``sinks``, flushed."""
    program = make_program(sinks, ["answer"])
    predictions = []
    for answer in CAPITALS:
        lm_server.configure(answers={"answer": answer})
        predictions.append(program(question="Which capital?"))
    assert all(sink.flush(20) for sink in sinks)
    assert [prediction.answer for prediction in predictions] == list(CAPITALS)
    return predictions


def check_rebuilt_fields(
    node_consumers: NodeConsumers, script: str, destination: str, sink: streamll.BaseSink, sinks: list[Any]
) -> None:
    """One ChainOfThought run streamed through ``sink``: the Node consumer rebuilds its reasoning and answer."""
    memory = streamll.MemorySink(name=f"{script}-fields")
    sinks += [sink, memory]
    program = make_program(sinks, ["reasoning", "answer"], reasoning=True)

    prediction = program(question="What is machine learning?")
    assert all(each.flush(20) for each in sinks)

    run = node_consumers.run(script, destination)
    check_summary(run, memory, [prediction], ["reasoning", "answer"])
    assert run.summary["fields"]["answer"] == prediction.answer


def check_summary(
    run: ConsumerRun, memory: streamll.MemorySink, predictions: Sequence[dspy.Prediction], fields: Sequence[str]
) -> None:
    """The consumer read exactly what the program emitted, valid, in order, with each prediction's text."""
    assert run.returncode == 0, run.explain()
    summary = run.summary
    assert summary["invalid"] == [], run.explain()
    assert summary["valid"] == len(memory.events), run.explain()
    assert summary["duplicates"] == 0
    executions = summary["executions"]
    order = list(dict.fromkeys(event.execution_id for event in memory.events))
    assert [execution["execution_id"] for execution in executions] == order, run.explain()
    for execution, prediction in zip(executions, predictions, strict=True):
        assert execution["module_name"] == "QA"
        assert execution["ended"] == "end"
        assert execution["ordered"] is True
        assert execution["token_gaps"] == []
        assert execution["fields"] == {name: prediction[name] for name in fields}, run.explain()
    assert summary["fields"] == executions[-1]["fields"]
    assert summary["timed_out"] is False


__all__ = [
    "CAPITALS",
    "ConsumerRun",
    "NodeConsumers",
    "check_rebuilt_fields",
    "check_summary",
    "make_program",
    "node_unavailable",
    "run_capitals",
]
