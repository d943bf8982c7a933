"""Sync, async, sync-inside-a-loop, and concurrent calls: one execution each, streams never mix."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import dspy
import pytest
import streamll
from streamll import MemorySink
from streamll.testing import OfflineLMServer


@streamll.instrument(stream_fields=["reasoning", "answer"])
class WithAforward(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cot = dspy.ChainOfThought("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.cot(question=question)

    async def aforward(self, question: str) -> dspy.Prediction:
        self.aforward_threads.append(threading.current_thread())
        return await self.cot.acall(question=question)

    aforward_threads: ClassVar[list[threading.Thread]] = []


@streamll.instrument(stream_fields=["answer"])
class SyncOnly(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.predict(question=question)


def echo_answers(server: OfflineLMServer) -> None:
    """Each reply repeats its question, so a mixed stream is visible in the text."""

    def responder(request):  # type: ignore[no-untyped-def]
        question = request.inputs.get("question", "")
        return {"reasoning": f"Reasoning about {question} carefully.", "answer": f"Answer for {question} ends here."}

    server.configure(responder=responder, token_delay=0.002)


def assert_isolated(sink: MemorySink, answers: dict[str, str]) -> None:
    """Every execution's answer tokens spell exactly its own prediction."""
    assert streamll.flush(20)
    by_execution: dict[str, str] = {}
    for start in sink.of_type("start"):
        if start.operation == "module":
            by_execution[start.execution_id] = start.data["inputs"]["question"]
    assert sorted(by_execution.values()) == sorted(answers)
    for execution_id, question in by_execution.items():
        tokens = sink.tokens("answer", execution_id=execution_id)
        assert [t.token_index for t in tokens] == list(range(len(tokens)))
        assert "".join(t.token for t in tokens) == answers[question]
        sequences = [e.sequence for e in sink.events if e.execution_id == execution_id]
        assert sequences == list(range(len(sequences)))


async def test_acall_with_aforward_streams_on_the_callers_loop(lm, memory_sink: MemorySink) -> None:
    module = WithAforward()
    module.aforward_threads = []
    prediction = await module.acall(question="async?")
    assert module.aforward_threads == [threading.current_thread()]
    assert streamll.flush(10)
    assert memory_sink.text("answer") == prediction.answer
    assert memory_sink.text("reasoning") == prediction.reasoning
    assert memory_sink.of_type("start")[0].method_name == "aforward"


async def test_acall_without_aforward_fails_as_it_does_without_streamll(lm, memory_sink: MemorySink) -> None:
    class Plain(dspy.Module):
        def forward(self, question: str) -> dspy.Prediction:
            raise AssertionError("acall never runs forward")

    with pytest.raises(AttributeError) as plain:
        await Plain().acall(question="no aforward here")
    with pytest.raises(AttributeError) as instrumented:
        await SyncOnly().acall(question="no aforward here")
    assert str(instrumented.value) == str(plain.value).replace("Plain", "SyncOnly")
    assert streamll.flush(10)
    assert [(e.event_type, e.operation) for e in memory_sink.events] == [("start", "module"), ("error", "module")]


async def test_sync_call_from_inside_a_running_loop(lm, memory_sink: MemorySink) -> None:
    prediction = SyncOnly()(question="sync inside async")
    assert streamll.flush(10)
    assert memory_sink.text("answer") == prediction.answer


def test_concurrent_threads_on_one_instance(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    echo_answers(server)
    module = WithAforward()
    questions = [f"thread-{index}" for index in range(6)]
    lm = server.lm()

    def call(question: str) -> str:
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
            return module(question=question).answer

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = dict(zip(questions, pool.map(call, questions), strict=True))
    assert_isolated(memory_sink, answers)


async def test_concurrent_tasks_on_one_instance(lm, server: OfflineLMServer, memory_sink: MemorySink) -> None:
    echo_answers(server)
    module = WithAforward()
    questions = [f"task-{index}" for index in range(6)]
    predictions = await asyncio.gather(*(module.acall(question=q) for q in questions))
    assert_isolated(memory_sink, {q: p.answer for q, p in zip(questions, predictions, strict=True)})


async def test_concurrent_sync_calls_in_worker_threads(lm, server: OfflineLMServer, memory_sink: MemorySink) -> None:
    echo_answers(server)
    module = SyncOnly()
    questions = [f"worker-{index}" for index in range(4)]
    predictions = await asyncio.gather(*(asyncio.to_thread(module, question=q) for q in questions))
    assert_isolated(memory_sink, {q: p.answer for q, p in zip(questions, predictions, strict=True)})


def test_context_ids_are_per_thread(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    module = SyncOnly()
    lm = server.lm()
    users = [f"user-{i}" for i in range(3)]

    def call(user: str) -> None:
        streamll.set_context(user_id=user)
        with dspy.context(lm=lm):
            module(question=f"from {user}")

    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        list(pool.map(call, users))  # a thread's exception is raised here, failing the test
    assert streamll.flush(10)
    starts = [start for start in memory_sink.of_type("start") if start.operation == "module"]
    assert sorted(start.tags.get("user_id") for start in starts) == users
    for start in starts:
        user = start.tags["user_id"]
        assert start.data["inputs"]["question"] == f"from {user}"
        same = [e for e in memory_sink.events if e.execution_id == start.execution_id]
        assert len(same) > 1
        assert {e.tags.get("user_id") for e in same} == {user}
