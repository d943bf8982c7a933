"""The first instrumented call of a process puts every wrapper in place, for every kind of program.

streamll builds its DSPy wrappers once, when the first instrumented call
starts. The fixture below gives a test that first call (it sets aside the
wrappers built earlier in this process and restores them after), so each kind
of program is checked to stream right after the wrappers were built.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import dspy
import pytest
import streamll
from streamll import MemorySink
from streamll.streaming import patches
from streamll.testing import OfflineLMServer

from tests.agent_programs import (
    ANSWER,
    PLAN,
    native_adapter,
    native_agent,
    native_lm,
    native_responder,
    react_agent,
    react_responder,
)

from .test_attempts import answers_per_attempt, build, scores, span_end
from .test_streaming import QASignature, assert_field_stream, tokens_by_field


@streamll.instrument(stream_fields=["analysis", "answer"])
class QAModule(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict(QASignature)

    def forward(self, question: str) -> dspy.Prediction:
        return self.predict(question=question)

    async def aforward(self, question: str) -> dspy.Prediction:
        return await self.predict.acall(question=question)


@pytest.fixture
def first_use() -> Iterator[None]:
    """This test's instrumented call is the first: the wrappers are built in it."""
    assert patches.active() == 0
    built, prepared = list(patches._patches), patches._prepared
    patches._patches.clear()
    patches._prepared = False
    try:
        yield
    finally:
        assert patches.active() == 0
        patches._patches[:] = built
        patches._prepared = prepared


def streams_answer_and_analysis(sink: MemorySink, run: Any) -> None:
    prediction = run(QAModule())
    streams = tokens_by_field(sink)
    assert set(streams) == {"analysis", "answer"}
    assert_field_stream(streams["analysis"], prediction.analysis, "field_end")
    assert_field_stream(streams["answer"], prediction.answer, "stop")
    sink.clear()


@pytest.mark.parametrize("engine", ["native", "litellm"])
def test_the_first_call_streams_sync_and_async_on_each_engine(
    engine: str, first_use: None, server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    lm = server.lm(engine="litellm") if engine == "litellm" else server.lm()
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        streams_answer_and_analysis(memory_sink, lambda module: module(question="sync first"))
        streams_answer_and_analysis(memory_sink, lambda module: asyncio.run(module.acall(question="then async")))
    assert patches.active() == 0
    before = len(server.requests)
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        dspy.Predict("question -> answer")(question="not instrumented")
    assert streamll.flush(10)
    assert memory_sink.events == [] and len(server.requests) == before + 1


@pytest.mark.parametrize("kind", ["refine", "best_of_n"])
def test_the_first_call_numbers_attempts(kind: str, first_use: None, server: OfflineLMServer, memory_sink: MemorySink) -> None:
    server.configure(responder=answers_per_attempt())
    with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
        prediction = build(kind, scores(0.2, 0.9, 0.5), ["answer"])(question="attempts")
    assert streamll.flush(10)
    end = span_end(memory_sink, "Program.improve")
    assert (end.data["attempts"], end.data["chosen_attempt"]) == (3, 2)
    assert memory_sink.text("answer", attempt=2) == prediction.answer == "Answer number 2"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_first_call_follows_react_steps_and_tools(
    mode: str, first_use: None, server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    server.configure(responder=react_responder)
    agent = react_agent()
    with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
        prediction = agent(question="react") if mode == "sync" else asyncio.run(agent.acall(question="react"))
    assert prediction.answer == ANSWER
    assert streamll.flush(10)
    starts = memory_sink.of_type("tool_start")
    assert [(start.data["tool_name"], start.data["step"]) for start in starts] == [
        (name, step) for step, (name, _) in enumerate(PLAN)
    ]
    assert {token.data["step"] for token in memory_sink.tokens("next_tool_args")} == set(range(len(PLAN)))


def test_the_first_call_links_native_tool_calls(first_use: None, server: OfflineLMServer, memory_sink: MemorySink) -> None:
    server.configure(responder=native_responder)
    with dspy.context(lm=native_lm(server), adapter=native_adapter()):
        assert native_agent()(question="native first") == ["Sunny and 21 C in Paris.", 2_100_000]
    assert streamll.flush(10)
    starts = memory_sink.of_type("tool_start")
    ids = {token.data["tool_call_id"] for token in memory_sink.tokens("tool_calls")}
    assert len(starts) == 2 and {start.data["tool_call_id"] for start in starts} == ids
