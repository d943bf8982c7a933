"""What token events say about where they come from, and what choosing fields leaves alone."""

from __future__ import annotations

from typing import Any

import dspy
import pytest
import streamll
from streamll import MemorySink
from streamll.streaming.typed import jsonable
from streamll.testing import OfflineLMServer

from tests.agent_programs import PickTools, native_adapter, native_lm, native_responder, population
from tests.small_programs import counted


class CountingAdapter(dspy.ChatAdapter):
    """A user's adapter whose ``parse`` counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.parsed = 0

    def parse(self, signature: Any, completion: str) -> dict[str, Any]:
        self.parsed += 1
        return super().parse(signature, completion)


def test_a_users_own_parse_runs_as_often_as_without_streamll(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    server.configure(answers={"answer": "Four.", "count": 4})

    plain, instrumented = CountingAdapter(), CountingAdapter()
    with dspy.context(lm=server.lm(), adapter=plain):
        counted()()(question="How many?")
    with dspy.context(lm=server.lm(), adapter=instrumented):
        prediction = counted(["count", "answer"])()(question="How many?")
    assert streamll.flush(10)
    assert instrumented.parsed == plain.parsed == 1
    # the type is still reported; the value would need the user's parse, so it is left out
    counts = memory_sink.tokens("count")
    assert {event.data["field_type"] for event in counts} == {"int"}
    assert all("value" not in event.data for event in counts)
    assert memory_sink.text("count") == str(prediction.count) == "4"


def test_a_qualified_entry_does_not_choose_a_predictor_made_on_the_fly(
    server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    @streamll.instrument(stream_fields=["respond.answer"])
    class OnTheFly(dspy.Module):
        def forward(self, question: str) -> dspy.Prediction:
            return dspy.Predict("question -> answer")(question=question)

    with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()), pytest.warns(UserWarning, match="match no output"):
        assert OnTheFly()(question="Who answers?").answer
    assert streamll.flush(10)
    assert memory_sink.tokens() == []


def test_a_predictor_made_on_the_fly_is_named_by_its_class(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    @streamll.instrument(stream_fields=["answer"])
    class Improvised(dspy.Module):
        def forward(self, question: str) -> dspy.Prediction:
            return dspy.Predict("question -> answer")(question=question)

    with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
        assert Improvised()(question="Who answers?").answer
    assert streamll.flush(10)
    tokens = memory_sink.tokens("answer")
    assert tokens and {token.data["predictor"] for token in tokens} == {"Improvised.Predict"}
    assert all("predictor_path" not in token.data for token in tokens), "it has no path in the module"


def test_values_are_json_data_and_text_where_nothing_fits() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    assert jsonable({"when": (1, 2), "what": Opaque()}) == {"when": [1, 2], "what": "<opaque>"}


def test_a_copy_made_during_the_call_keeps_the_predictors_path(
    server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    @streamll.instrument(stream_fields=["answer"])
    class Copying(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.respond = dspy.Predict("question -> answer")

        def forward(self, question: str) -> dspy.Prediction:
            return self.respond.deepcopy()(question=question)

    with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
        prediction = Copying()(question="Which path?")
    assert streamll.flush(10)
    tokens = memory_sink.tokens("answer")
    assert "".join(token.token for token in tokens) == prediction.answer
    assert {(token.data["predictor_path"], token.module_name) for token in tokens} == {("respond", "Copying.respond")}
    assert all("attempt" not in token.data for token in tokens)


def test_the_attempts_span_is_the_modules_forward(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    @streamll.instrument
    class Best(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.best = dspy.BestOfN(dspy.Predict("question -> answer"), N=2, reward_fn=lambda a, p: 1.0, threshold=1.0)

        def forward(self, question: str) -> dspy.Prediction:
            return self.best(question=question)

    with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
        Best()(question="One is enough")
    assert streamll.flush(10)
    (start,) = [event for event in memory_sink.of_type("start") if event.module_name == "Best.best"]
    assert (start.operation, start.method_name) == ("module", "forward")


def test_execute_without_functions_finds_the_callers_tools(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    server.configure(responder=native_responder)

    @streamll.instrument(stream_fields=["tool_calls"])
    class Agent(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pick = dspy.Predict(PickTools)

        def forward(self, question: str) -> Any:
            def weather(city: str) -> str:  # a local of the caller; population is a global of this module
                """Today's weather in a city."""
                return f"Sunny and 21 C in {city}."

            prediction = self.pick(question=question, tools=[dspy.Tool(weather), dspy.Tool(population)])
            results = []
            for call in prediction.tool_calls.tool_calls:
                results.append(call.execute())
            return results

    with dspy.context(lm=native_lm(server), adapter=native_adapter()):
        assert Agent()(question="Weather and people?") == ["Sunny and 21 C in Paris.", 2_100_000]
    assert streamll.flush(10)
    ends = memory_sink.of_type("tool_end")
    assert [end.data["tool_name"] for end in ends] == ["weather", "population"]


def test_an_instrumented_best_of_n_names_its_own_span(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    @streamll.instrument(stream_fields=["answer"])
    class Best(dspy.BestOfN):
        pass

    program = Best(dspy.Predict("question -> answer"), N=2, reward_fn=lambda args, pred: 1.0, threshold=1.0)
    with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
        prediction = program(question="Only one attempt?")
    assert streamll.flush(10)
    ends = [event for event in memory_sink.of_type("end") if event.operation == "module"]
    assert [event.module_name for event in ends] == ["Best.Best", "Best"]
    assert (ends[0].data["attempts"], ends[0].data["chosen_attempt"]) == (1, 1)
    assert memory_sink.text("answer") == prediction.answer
