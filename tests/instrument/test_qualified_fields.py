"""Predictor-qualified stream fields: two stages that both output ``answer`` can be told apart."""

from __future__ import annotations

import warnings
from typing import Any

import dspy
import pytest
import streamll
from streamll import MemorySink
from streamll.testing import OfflineLMServer

DRAFT = "A first draft of the answer."
FINAL = "Machine learning is a subset of artificial intelligence."


def two_answers(request: Any) -> dict[str, Any]:
    """The draft stage and the respond stage answer differently (the respond stage sees a draft)."""
    return {"answer": FINAL if "draft" in request.inputs else DRAFT}


def pipeline(stream_fields: list[str]) -> Any:
    @streamll.instrument(stream_fields=stream_fields)
    class TwoStage(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.draft = dspy.ChainOfThought("question -> answer")
            self.respond = dspy.Predict("question, draft -> answer")

        def forward(self, question: str) -> dspy.Prediction:
            draft = self.draft(question=question)
            return self.respond(question=question, draft=draft.answer)

    return TwoStage()


def run(stream_fields: list[str], server: OfflineLMServer, sink: MemorySink) -> dspy.Prediction:
    server.configure(responder=two_answers)
    prediction = pipeline(stream_fields)(question="What is machine learning?")
    assert streamll.flush(10)
    return prediction


def test_a_qualified_name_streams_one_predictors_field(
    server: OfflineLMServer, lm: Any, memory_sink: MemorySink
) -> None:
    prediction = run(["respond.answer"], server, memory_sink)

    tokens = memory_sink.tokens()
    assert {event.data["predictor_path"] for event in tokens} == {"respond"}
    assert {event.module_name for event in tokens} == {"TwoStage.respond"}
    assert memory_sink.text("answer") == prediction.answer == FINAL
    assert [event.token_index for event in tokens] == list(range(len(tokens)))


def test_a_bare_name_streams_every_predictors_field_and_text_is_rebuilt_per_predictor(
    server: OfflineLMServer, lm: Any, memory_sink: MemorySink
) -> None:
    prediction = run(["answer"], server, memory_sink)

    assert memory_sink.texts("answer") == {"draft.predict.answer": DRAFT, "respond.answer": FINAL}
    assert memory_sink.text("respond.answer") == prediction.answer
    assert memory_sink.text("draft.answer") == DRAFT  # a module path selects the predictors below it
    assert memory_sink.text("answer", predictor="draft.predict") == DRAFT
    assert memory_sink.text("answer") == DRAFT + FINAL  # the 0.x helper still joins every token of the field


def test_a_module_path_qualifies_the_predictors_below_it(
    server: OfflineLMServer, lm: Any, memory_sink: MemorySink
) -> None:
    run(["draft.reasoning", "draft.answer"], server, memory_sink)

    assert {event.data["predictor_path"] for event in memory_sink.tokens()} == {"draft.predict"}
    assert set(memory_sink.texts()) == {"draft.predict.reasoning", "draft.predict.answer"}


def test_the_class_name_may_prefix_the_path(server: OfflineLMServer, lm: Any, memory_sink: MemorySink) -> None:
    run(["TwoStage.respond.answer"], server, memory_sink)
    assert memory_sink.texts() == {"respond.answer": FINAL}


def test_an_unknown_predictor_path_warns_and_names_what_exists(
    server: OfflineLMServer, lm: Any, memory_sink: MemorySink
) -> None:
    with pytest.warns(UserWarning, match=r"\['answerer\.answer'\] match no output field") as caught:
        run(["answerer.answer"], server, memory_sink)
    assert "respond.answer" in str(caught[0].message) and "draft.predict.reasoning" in str(caught[0].message)
    assert memory_sink.tokens() == []


def test_a_known_qualified_name_does_not_warn(server: OfflineLMServer, lm: Any, memory_sink: MemorySink) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*match no output field")
        run(["respond.answer", "draft.reasoning"], server, memory_sink)


@pytest.mark.parametrize("entry", ["respond.", ".answer", "respond..answer", "respond answer"])
def test_a_malformed_entry_is_a_one_line_error(entry: str) -> None:
    with pytest.raises(ValueError, match="predictor-qualified") as raised:
        streamll.instrument(stream_fields=[entry])
    assert "\n" not in str(raised.value)


def test_concurrent_calls_keep_each_stage_apart(server: OfflineLMServer, lm: Any, memory_sink: MemorySink) -> None:
    """``module.batch`` runs the pipeline in DSPy's worker threads: every execution has its own two stages."""
    server.configure(
        responder=lambda request: {
            "answer": f"{'Final' if 'draft' in request.inputs else 'Draft'}: {request.inputs.get('question')}"
        }
    )
    program = pipeline(["answer"])
    questions = [f"Question {n}?" for n in range(4)]
    examples = [dspy.Example(question=q).with_inputs("question") for q in questions]
    predictions = program.batch(examples, num_threads=4, disable_progress_bar=True)
    assert streamll.flush(10)

    executions = {event.execution_id for event in memory_sink.tokens()}
    assert len(executions) == len(questions)
    seen = {}
    for execution_id in executions:
        texts = memory_sink.texts(execution_id=execution_id)
        assert set(texts) == {"draft.predict.answer", "respond.answer"}
        question = texts["respond.answer"].removeprefix("Final: ")
        assert texts["draft.predict.answer"] == f"Draft: {question}"
        seen[question] = texts["respond.answer"]
    assert seen == {q: p.answer for q, p in zip(questions, predictions, strict=True)}
