"""A reasoning model's own reasoning (``reasoning_content``) streams as the ``reasoning`` field."""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import dspy
import pytest
import streamll
from streamll import MemorySink
from streamll.testing import OfflineLMServer

from tests.helpers import allowed_skip

THINKING = "The user asks for a definition. One plain sentence will do."
ENGINES = {"native": {}, "litellm": {"engine": "litellm"}}


def program(stream_fields: list[str], factory: Any) -> Any:
    @streamll.instrument(stream_fields=stream_fields)
    class Program(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.respond = factory()

        def forward(self, question: str) -> dspy.Prediction:
            return self.respond(question=question)

    return Program()


def run(server: OfflineLMServer, stream_fields: list[str], factory: Any, engine: str = "native") -> dspy.Prediction:
    if engine != "native" and importlib.util.find_spec("dspy.clients.engines") is None:
        allowed_skip(f"dspy {dspy.__version__} calls every LM through LiteLLM (the default case)")
    with dspy.context(lm=server.lm(**ENGINES[engine]), adapter=dspy.ChatAdapter()):
        prediction = program(stream_fields, factory)(question="What is machine learning?")
    assert streamll.flush(10)
    return prediction


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_reasoning_content_streams_as_the_reasoning_field(
    server: OfflineLMServer, memory_sink: MemorySink, engine: str
) -> None:
    server.configure(reasoning_content=THINKING)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*match no output field")  # "reasoning" matched the LM's
        prediction = run(server, ["reasoning", "answer"], lambda: dspy.Predict("question -> answer"), engine)

    reasoning = memory_sink.tokens("reasoning")
    assert "".join(event.token for event in reasoning) == THINKING
    assert {event.data["source"] for event in reasoning} == {"native"}
    assert [event.token_index for event in reasoning] == list(range(len(reasoning)))
    assert [event.finish_reason for event in reasoning][-2:] == [None, "field_end"]
    answer = memory_sink.tokens("answer")
    assert "".join(event.token for event in answer) == prediction.answer
    assert answer[-1].finish_reason == "stop"
    assert memory_sink.events.index(reasoning[-1]) < memory_sink.events.index(answer[0])
    assert {event.parent_id for event in reasoning} == {event.parent_id for event in answer}  # one LM call


def test_native_reasoning_streams_only_when_chosen(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    server.configure(reasoning_content=THINKING)
    run(server, ["answer"], lambda: dspy.Predict("question -> answer"))
    assert memory_sink.tokens("reasoning") == []
    assert memory_sink.tokens("answer")


def test_a_reasoning_typed_field_streams_the_native_reasoning_it_holds(
    server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    """``dspy.Reasoning`` takes the LM's reasoning_content: the stream is that, not the text section."""
    reasoning_type = getattr(dspy, "Reasoning", None)
    if reasoning_type is None:
        allowed_skip(f"dspy {dspy.__version__} has no dspy.Reasoning")

    thought = dspy.Signature("question -> answer").prepend("reasoning", dspy.OutputField(), type_=reasoning_type)
    server.configure(reasoning_content=THINKING)
    prediction = run(server, ["reasoning", "answer"], lambda: dspy.Predict(thought))

    assert str(prediction.reasoning) == THINKING
    streams = memory_sink.tokens("reasoning")
    assert "".join(event.token for event in streams) == THINKING
    assert {event.data["source"] for event in streams} == {"native"}
    assert "".join(event.token for event in memory_sink.tokens("answer")) == prediction.answer


def test_dspy_native_reasoning_streams_what_the_reasoning_field_receives(
    server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    """On a model DSPy knows to reason, a ``dspy.Reasoning`` field leaves the prompt and asks for reasoning_effort."""
    reasoning_type = getattr(dspy, "Reasoning", None)
    if reasoning_type is None:
        allowed_skip(f"dspy {dspy.__version__} has no dspy.Reasoning")
    thought = dspy.Signature("question -> answer").prepend("reasoning", dspy.OutputField(), type_=reasoning_type)
    server.configure(reasoning_content=THINKING)
    lm = server.lm(model="o3-mini", temperature=1.0, max_tokens=16000)
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        prediction = program(["reasoning", "answer"], lambda: dspy.Predict(thought))(question="What is ML?")
    assert streamll.flush(10)

    (request,) = server.parsed_requests()
    assert request.output_fields == ["answer"] and request.body.get("reasoning_effort")  # DSPy's native path
    streams = memory_sink.tokens("reasoning")
    assert "".join(event.token for event in streams) == str(prediction.reasoning) == THINKING
    assert {event.data["source"] for event in streams} == {"native"}
    assert "".join(event.token for event in memory_sink.tokens("answer")) == prediction.answer


def test_chain_of_thought_keeps_streaming_its_text_reasoning(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    """ChainOfThought's ``reasoning`` is a text field parsed from the reply: that is what the prediction holds."""
    server.configure(reasoning_content=THINKING)
    prediction = run(server, ["reasoning", "answer"], lambda: dspy.ChainOfThought("question -> answer"))

    streams = memory_sink.tokens("reasoning")
    assert "".join(event.token for event in streams) == prediction.reasoning != THINKING
    assert {event.data["source"] for event in streams} == {"stream"}


def test_without_reasoning_content_nothing_streams_as_native(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    with pytest.warns(UserWarning, match=r"\['reasoning'\] match no output field"):
        run(server, ["reasoning", "answer"], lambda: dspy.Predict("question -> answer"))
    assert memory_sink.tokens("reasoning") == []
    assert memory_sink.tokens("answer")
