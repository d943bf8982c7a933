"""Typed output fields: token events say the field's type and the last one carries the parsed value."""

from __future__ import annotations

import logging
from typing import Any, Literal

import dspy
import pydantic
import pytest
import streamll
from streamll import MemorySink
from streamll.testing import OfflineLMServer

from tests.agent_programs import native_adapter, native_lm, population
from tests.small_programs import counted

from .conftest import ADAPTERS


class Info(pydantic.BaseModel):
    name: str
    year: int


class Typed(dspy.Signature):
    """Answer with typed fields."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()
    ok: bool = dspy.OutputField()
    count: int = dspy.OutputField()
    tags: list[str] = dspy.OutputField()
    kind: Literal["fact", "opinion"] = dspy.OutputField()
    info: Info = dspy.OutputField()


VALUES = {
    "answer": "Machine learning learns from data.",
    "ok": True,
    "count": 3,
    "tags": ["ml", "ai"],
    "kind": "fact",
    "info": {"name": "ML", "year": 1959},
}
TYPES = {"ok": "bool", "count": "int", "tags": "list[str]", "kind": "Literal['fact', 'opinion']", "info": "Info"}


@streamll.instrument(stream_fields=list(VALUES))
class TypedQA(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict(Typed)

    def forward(self, question: str) -> dspy.Prediction:
        return self.predict(question=question)


def json_form(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, pydantic.BaseModel) else value


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_typed_fields_carry_their_type_and_parsed_value(
    server: OfflineLMServer, memory_sink: MemorySink, adapter: str
) -> None:
    server.configure(answers=VALUES)
    with dspy.context(lm=server.lm(), adapter=ADAPTERS[adapter]()):
        prediction = TypedQA()(question="What is ML?")
    assert streamll.flush(10)

    for name, type_name in TYPES.items():
        events = memory_sink.tokens(name)
        assert events, f"{name} streamed nothing"
        assert {event.data["field_type"] for event in events} == {type_name}
        assert [event.token_index for event in events] == list(range(len(events)))
        last = events[-1]
        assert last.finish_reason is not None
        assert last.data["value"] == json_form(prediction[name]) == VALUES[name]
        assert all("value" not in event.data for event in events[:-1])
    answer = memory_sink.tokens("answer")
    assert all("field_type" not in event.data and "value" not in event.data for event in answer)
    assert "".join(event.token for event in answer) == prediction.answer  # text fields: exactly the prediction
    assert memory_sink.values() == {f"predict.{name}": VALUES[name] for name in TYPES}


def test_a_value_that_does_not_parse_has_no_value(server: OfflineLMServer, lm: Any, memory_sink: MemorySink) -> None:
    """The ChatAdapter cannot parse ``many`` as an int; DSPy falls back to JSON, whose reply parses."""
    server.configure(responder=lambda request: {"count": "many"} if request.adapter == "chat" else {"count": 4})

    Counted = counted(["count"])

    prediction = Counted()(question="How many?")
    assert streamll.flush(10)

    finals = [event for event in memory_sink.tokens("count") if event.finish_reason is not None]
    assert len(finals) == 2, "one stream of count per LM call (ChatAdapter, then the JSONAdapter fallback)"
    assert "value" not in finals[0].data
    assert finals[1].data["value"] == prediction.count == 4


def test_a_cached_typed_field_is_replayed_with_its_value(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    server.configure(answers=VALUES)
    with dspy.context(lm=server.lm(cache=True), adapter=dspy.ChatAdapter()):
        TypedQA()(question="cached typed question")
        assert streamll.flush(10)
        live = {name: "".join(token.token for token in memory_sink.tokens(name)).strip() for name in ("tags", "info")}
        memory_sink.clear()
        prediction = TypedQA()(question="cached typed question")
    assert streamll.flush(10)
    replayed = {name: "".join(token.token for token in memory_sink.tokens(name)) for name in ("tags", "info")}
    assert replayed == live == {"tags": '["ml", "ai"]', "info": '{"name": "ML", "year": 1959}'}, "JSON, as the LM wrote"

    counts = memory_sink.tokens("count")
    assert [event.data["source"] for event in counts] == ["cache"]
    assert counts[0].data["value"] == prediction.count == 3 and counts[0].data["field_type"] == "int"
    assert [token.token for token in counts + memory_sink.tokens("ok")] == ["3", "True"], "the reply's text of each"


async def test_an_async_call_streams_typed_values_too(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    @streamll.instrument(stream_fields=["predict.count", "answer"])
    class AsyncCounted(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("question -> answer, count: int")

        async def aforward(self, question: str) -> dspy.Prediction:
            return await self.predict.acall(question=question)

    server.configure(answers={"answer": "Four.", "count": 4})
    with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
        prediction = await AsyncCounted().acall(question="How many?")
    assert streamll.flush(10)

    assert memory_sink.values() == {"predict.count": 4} and prediction.count == 4
    assert memory_sink.text("predict.answer") == prediction.answer == "Four."


def test_a_chosen_value_parses_even_when_another_field_of_the_reply_does_not(
    server: OfflineLMServer, lm: Any, memory_sink: MemorySink
) -> None:
    """``count`` (not chosen) does not parse from the ChatAdapter's reply; ``ok`` does, so its value is there."""
    server.configure(
        responder=lambda request: {"ok": True, "count": "many" if request.adapter == "chat" else 4},
    )

    @streamll.instrument(stream_fields=["ok"])
    class Checked(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("question -> ok: bool, count: int")

        def forward(self, question: str) -> dspy.Prediction:
            return self.predict(question=question)

    prediction = Checked()(question="Is it?")
    assert streamll.flush(10)

    finals = [event for event in memory_sink.tokens("ok") if event.finish_reason is not None]
    assert len(finals) == 2, "one stream of ok per LM call (ChatAdapter, then the JSONAdapter fallback)"
    assert [event.data["value"] for event in finals] == [True, True] and prediction.ok is True


class Unreducible(Typed):
    """A signature that cannot be rebuilt without one of its fields (as a custom Signature class may)."""

    @classmethod
    def delete(cls, name: str) -> type[dspy.Signature]:
        raise TypeError(f"cannot drop {name}")


def test_a_signature_streamll_cannot_reduce_streams_its_fields_without_values(
    server: OfflineLMServer, lm: Any, memory_sink: MemorySink, caplog: pytest.LogCaptureFixture
) -> None:
    @streamll.instrument(stream_fields=["count", "answer"])
    class Stubborn(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict(Unreducible)

        def forward(self, question: str) -> dspy.Prediction:
            return self.predict(question=question)

    server.configure(answers=VALUES)
    with caplog.at_level(logging.DEBUG, logger="streamll"):
        prediction = Stubborn()(question="What is ML?")
    assert streamll.flush(10)

    counts = memory_sink.tokens("count")
    assert "".join(event.token for event in counts) == "3" and prediction.count == 3
    assert {event.data["field_type"] for event in counts} == {"int"}
    assert all("value" not in event.data for event in counts)
    ours = [record for record in caplog.records if record.name == "streamll"]
    assert not [record for record in ours if record.levelno > logging.DEBUG]
    (debug,) = [record for record in ours if "no value parser" in record.getMessage()]
    assert debug.getMessage() == "streamll: no value parser for ['count']"
    assert debug.exc_info is not None and "cannot drop" in str(debug.exc_info[1])


class Nested(dspy.Signature):
    """Answer with types built from a model of this module."""

    question: str = dspy.InputField()
    found: list[Info] = dspy.OutputField()
    best: Info | None = dspy.OutputField()


def test_a_type_built_from_a_users_class_is_named_without_its_module(
    server: OfflineLMServer, lm: Any, memory_sink: MemorySink
) -> None:
    found = [{"name": "ML", "year": 1959}, {"name": "AI", "year": 1956}]
    server.configure(answers={"found": found, "best": found[1]})

    @streamll.instrument(stream_fields=["found", "best"])
    class Finder(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict(Nested)

        def forward(self, question: str) -> dspy.Prediction:
            return self.predict(question=question)

    prediction = Finder()(question="Which fields?")
    assert streamll.flush(10)

    assert {event.data["field_type"] for event in memory_sink.tokens("found")} == {"list[Info]"}
    assert {event.data["field_type"] for event in memory_sink.tokens("best")} == {"Info | None"}
    assert memory_sink.values() == {"predict.found": found, "predict.best": found[1]}
    assert prediction.best == Info(name="AI", year=1956)


class Plan(dspy.Signature):
    """Call tools, or answer with typed fields."""

    question: str = dspy.InputField()
    tools: list[dspy.Tool] = dspy.InputField()
    tool_calls: dspy.ToolCalls = dspy.OutputField()
    ok: bool = dspy.OutputField()
    count: int = dspy.OutputField()
    score: float = dspy.OutputField()
    tags: list[str] = dspy.OutputField()


def test_typed_fields_chosen_with_the_tool_calls_field_each_say_their_type(
    server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    """Native function calling: the ``dspy.ToolCalls`` field has no type name, every typed field beside it does."""
    answers = {"ok": True, "count": 3, "score": 0.5, "tags": ["a"]}
    server.configure(answers=answers)

    @streamll.instrument(stream_fields=["tool_calls", *answers])
    class Planner(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.plan = dspy.Predict(Plan)

        def forward(self, question: str) -> dspy.Prediction:
            return self.plan(question=question, tools=[dspy.Tool(population)])

    with dspy.context(lm=native_lm(server), adapter=native_adapter()):
        prediction = Planner()(question="How many?")
    assert streamll.flush(10)

    types = {token.field: token.data.get("field_type") for token in memory_sink.tokens()}
    assert types == {"ok": "bool", "count": "int", "score": "float", "tags": "list[str]"}
    assert memory_sink.values() == {f"plan.{name}": value for name, value in answers.items()}
    assert prediction.tool_calls is None and prediction.count == 3


class AnswerOrCall(dspy.Signature):
    """Answer, or call a tool."""

    question: str = dspy.InputField()
    tools: list[dspy.Tool] = dspy.InputField()
    answer: str = dspy.OutputField()
    tool_calls: dspy.ToolCalls = dspy.OutputField()


def answerer(chosen: list[str]) -> dspy.Module:
    """A module that answers or calls the population tool, streaming the ``chosen`` fields (a fresh class per call)."""

    @streamll.instrument(stream_fields=chosen)
    class Answerer(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.plan = dspy.Predict(AnswerOrCall)

        def forward(self, question: str) -> dspy.Prediction:
            return self.plan(question=question, tools=[dspy.Tool(population)])

    return Answerer()


@pytest.mark.parametrize("chosen", [["answer"], ["answer", "tool_calls"]], ids=["answer", "answer-and-tool-calls"])
def test_a_native_reply_without_tool_calls_ends_its_last_field_with_the_lms_reason(
    server: OfflineLMServer, memory_sink: MemorySink, chosen: list[str]
) -> None:
    """With native function calling the tool calls never appear in the text: the text's last field is the reply's."""
    server.configure(answers={"answer": "Paris."})

    with dspy.context(lm=native_lm(server), adapter=native_adapter()):
        prediction = answerer(chosen)(question="Capital of France?")
    assert streamll.flush(10)

    tokens = memory_sink.tokens()
    assert "".join(token.token for token in tokens) == prediction.answer == "Paris."
    assert [token.finish_reason for token in tokens][-1] == "stop"


def test_without_native_function_calling_the_tool_calls_are_text_and_end_the_reply(
    server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    """A plain ChatAdapter writes the ToolCalls field in the reply's text: the field before it ends ``field_end``."""
    calls = {"tool_calls": [{"name": "population", "args": {"city": "Paris"}}]}
    server.configure(answers={"answer": "Let me check.", "tool_calls": calls})

    with dspy.context(lm=native_lm(server), adapter=dspy.ChatAdapter()):
        prediction = answerer(["answer", "tool_calls"])(question="How many live in Paris?")
    assert streamll.flush(10)

    last = {token.field: token.finish_reason for token in memory_sink.tokens() if token.finish_reason}
    assert last == {"answer": "field_end", "tool_calls": "stop"}
    assert [call.name for call in prediction.tool_calls.tool_calls] == ["population"]
