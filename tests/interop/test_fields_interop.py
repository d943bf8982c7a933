"""The Node.js consumer reads per-predictor fields, typed values and native reasoning from NATS JetStream."""

# ruff: noqa: E402 - the plugin check runs before the imports that need the plugin
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import dspy
import pytest

from tests.helpers import require_plugin

require_plugin("nats")  # before importing it below

import streamll
from streamll.testing import OfflineLMServer
from streamll_nats import NatsSink

from tests.interop.support import NodeConsumers
from tests.nats.conftest import delete_stream

pytestmark = [pytest.mark.interop, pytest.mark.nats]

THINKING = "The draft is good. Count the key ideas."


@pytest.fixture
async def destination(nats_url: str, names: tuple[str, str]) -> AsyncIterator[str]:
    subject, stream = names
    yield f"{nats_url}?subject={subject}&stream={stream}"
    await delete_stream(nats_url, stream)


def staged_answers(request: Any) -> dict[str, Any]:
    if "draft" in request.inputs:
        return {"answer": "Machine learning learns patterns from data.", "count": 2, "ok": True}
    return {"answer": "A draft about machine learning."}


def build(sinks: list[Any]) -> Any:
    @streamll.instrument(stream_fields=["reasoning", "answer", "respond.count", "respond.ok"], sinks=sinks)
    class Staged(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.draft = dspy.ChainOfThought("question -> answer")
            self.respond = dspy.Predict("question, draft -> answer, count: int, ok: bool")

        def forward(self, question: str) -> dspy.Prediction:
            draft = self.draft(question=question)
            return self.respond(question=question, draft=draft.answer)

    return Staged()


def test_node_reads_each_stage_typed_values_and_native_reasoning(
    node_consumers: NodeConsumers,
    destination: str,
    lm: object,
    lm_server: OfflineLMServer,
    sinks: list[streamll.BaseSink],
) -> None:
    lm_server.configure(responder=staged_answers, reasoning_content=THINKING)
    memory = streamll.MemorySink(name="fields-interop")
    sinks += [NatsSink(destination), memory]

    prediction = build(sinks)(question="What is machine learning?")
    assert all(sink.flush(20) for sink in sinks)

    run = node_consumers.run("nats-consumer.mjs", destination)
    assert run.returncode == 0, run.explain()
    summary = run.summary
    assert summary["invalid"] == [] and summary["valid"] == len(memory.events), run.explain()
    fields = summary["predictor_fields"]
    assert fields == memory.texts(), run.explain()
    assert fields["respond.answer"] == prediction.answer
    assert fields["draft.predict.answer"] == "A draft about machine learning."
    assert fields["respond.reasoning"] == THINKING  # the LM's own reasoning, for the stage without a text one
    assert fields["draft.predict.reasoning"] != THINKING  # ChainOfThought's parsed text reasoning
    assert summary["values"] == {"respond.count": prediction.count, "respond.ok": prediction.ok} == memory.values()
    native = [e for e in memory.tokens("reasoning") if e.data["source"] == "native"]
    assert native and {e.data["predictor_path"] for e in native} == {"respond"}
