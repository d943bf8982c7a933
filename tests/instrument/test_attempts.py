"""``dspy.Refine`` / ``dspy.BestOfN``: every attempt is numbered and the returned one is marked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dspy
import pytest
import streamll
from streamll import MemorySink
from streamll.core.events import Event
from streamll.testing import OfflineLMServer


def answers_per_attempt() -> Callable[[Any], dict[str, Any]]:
    """Each request for an answer gets a different one: attempt n's is "Answer number n"."""
    count = 0

    def respond(request: Any) -> dict[str, Any]:
        nonlocal count
        if "answer" not in request.output_fields:
            return {}
        count += 1
        return {"answer": f"Answer number {count}"}

    return respond


def scores(*values: float) -> Callable[[Any, Any], float]:
    """A reward function giving the attempts these scores, in order."""
    pending = list(values)
    return lambda args, prediction: pending.pop(0)


def build(kind: str, reward: Callable[[Any, Any], float], stream_fields: list[str]) -> Any:
    @streamll.instrument(stream_fields=stream_fields)
    class Program(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            if kind == "refine":
                self.improve = dspy.Refine(
                    dspy.ChainOfThought("question -> answer"), N=3, reward_fn=reward, threshold=1.0
                )
            else:
                self.improve = dspy.BestOfN(dspy.Predict("question -> answer"), N=3, reward_fn=reward, threshold=1.0)

        def forward(self, question: str) -> dspy.Prediction:
            return self.improve(question=question)

    return Program()


def span_end(sink: MemorySink, name: str) -> Event:
    (end,) = [event for event in sink.of_type("end") if event.module_name == name]
    return end


@pytest.mark.parametrize(("kind", "path"), [("refine", "improve.module.predict"), ("best_of_n", "improve.module")])
def test_attempts_are_numbered_and_the_returned_one_is_marked(
    kind: str, path: str, server: OfflineLMServer, lm: Any, memory_sink: MemorySink
) -> None:
    server.configure(responder=answers_per_attempt())
    program = build(kind, scores(0.2, 0.9, 0.5), ["answer"])
    prediction = program(question="What is machine learning?")
    assert streamll.flush(10)

    tokens = memory_sink.tokens("answer")
    assert {event.data["predictor_path"] for event in tokens} == {path}  # the user's path, not the copy's
    assert {event.module_name for event in tokens} == {f"Program.{path}"}
    texts = {n: memory_sink.text("answer", attempt=n) for n in (1, 2, 3)}
    assert all(texts.values()) and sorted(event.data["attempt"] for event in tokens if event.finish_reason) == [1, 2, 3]
    lm_ends = [event for event in memory_sink.of_type("end") if event.operation == "lm" and "attempt" in event.data]
    assert [event.data["attempt"] for event in lm_ends] == [1, 2, 3]

    end = span_end(memory_sink, "Program.improve")
    assert end.data["attempts"] == 3
    assert end.data["chosen_attempt"] == 2
    assert texts == {n: f"Answer number {n}" for n in (1, 2, 3)}
    assert texts[2] == prediction.answer  # the marked attempt streamed the returned prediction
    start = next(e for e in memory_sink.of_type("start") if e.module_name == "Program.improve")
    assert all(event.parent_id == start.event_id for event in memory_sink.of_type("start") if event.operation == "lm")


def test_an_attempt_reaching_the_threshold_ends_the_attempts(
    server: OfflineLMServer, lm: Any, memory_sink: MemorySink
) -> None:
    server.configure(responder=answers_per_attempt())
    prediction = build("best_of_n", scores(0.1, 1.0), ["answer"])(question="What is machine learning?")
    assert streamll.flush(10)

    end = span_end(memory_sink, "Program.improve")
    assert (end.data["attempts"], end.data["chosen_attempt"]) == (2, 2)
    assert memory_sink.text("answer", attempt=2) == prediction.answer


def test_attempts_are_reported_without_stream_fields(server: OfflineLMServer, lm: Any, memory_sink: MemorySink) -> None:
    build("best_of_n", scores(0.3, 0.1, 0.2), [])(question="What is machine learning?")
    assert streamll.flush(10)

    assert memory_sink.tokens() == []
    end = span_end(memory_sink, "Program.improve")
    assert (end.data["attempts"], end.data["chosen_attempt"]) == (3, 1)


def test_a_failing_reward_surfaces_unchanged_and_the_span_ends_with_the_error(
    server: OfflineLMServer, lm: Any, memory_sink: MemorySink
) -> None:
    def reward(args: Any, prediction: Any) -> float:
        raise ZeroDivisionError("reward broke")

    program = build("best_of_n", reward, ["answer"])
    program.improve.fail_count = 0
    with pytest.raises(ZeroDivisionError, match="reward broke"):
        program(question="What is machine learning?")
    assert streamll.flush(10)

    (error,) = [event for event in memory_sink.of_type("error") if event.module_name == "Program.improve"]
    assert error.data["error_type"] == "ZeroDivisionError"
