"""Tool spans: which call a ``tool_start`` names, what its status texts say, and what a broken span leaves alone.

Every test drives a real DSPy program (ReAct, native function calling or a
``dspy.Tool`` called by the program) and reads the events a MemorySink received.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

import dspy
import pytest
import streamll
from dspy.adapters.types.tool import ToolCalls
from streamll import MemorySink
from streamll.core.events import Event
from streamll.core.tools import ToolSpan
from streamll.streaming import hooks
from streamll.testing import OfflineLMServer

from tests.agent_programs import (
    ANSWER,
    NATIVE_CALLS,
    PLAN,
    PickTools,
    native_adapter,
    native_lm,
    population,
    react_agent,
    react_responder,
    step_of,
    weather,
)
from tests.helpers import allowed_skip

QUESTION = "What is Paris like today?"


def lm_starts(sink: MemorySink) -> list[Event]:
    return [event for event in sink.of_type("start") if event.operation == "lm"]


# ------------------------------------------------------------------ a span that cannot close


def failing(term: str) -> str:
    """A tool that always fails."""
    raise KeyError(f"no entry for {term}")


@streamll.instrument
class CallTwo(dspy.Module):
    """Calls a tool that answers, then one that raises; returns the answer and the exception."""

    def forward(self, city: str) -> Any:
        answer = dspy.Tool(weather)(city=city)
        try:
            dspy.Tool(failing)(term=city)
        except KeyError as exc:
            return answer, exc
        raise AssertionError("the failing tool returned")


def test_a_tool_span_that_cannot_close_leaves_results_and_errors_as_they_are(
    memory_sink: MemorySink, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug closing a tool span is logged, with its reason, once per call; the program sees no difference."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("span bug")

    monkeypatch.setattr(ToolSpan, "close", broken)
    with caplog.at_level(logging.ERROR, logger="streamll"):
        answer, error = CallTwo()(city="Paris")
    assert answer == "Sunny and 21 C in Paris."
    assert type(error) is KeyError and error.args == ("no entry for Paris",)
    assert [record.getMessage() for record in caplog.records] == ["streamll: could not close a tool span"] * 2
    assert all(record.exc_info and str(record.exc_info[1]) == "span bug" for record in caplog.records)
    assert streamll.flush(10)
    assert [event.data["tool_name"] for event in memory_sink.of_type("tool_start")] == ["weather", "failing"]


# ------------------------------------------------------------------ ReAct: a tool that calls a tool


def briefing(city: str) -> str:
    """A briefing on a city: it asks the weather tool."""
    return "Briefing: " + dspy.Tool(weather)(city=city)


def briefing_responder(request: Any) -> dict[str, Any]:
    """Step 0 calls ``briefing``, step 1 finishes."""
    if "next_tool_name" not in request.output_fields:
        return {"answer": "Sunny."}
    name, args = [("briefing", {"city": "Paris"}), ("finish", {})][min(step_of(request), 1)]
    return {"next_thought": f"I will use {name}.", "next_tool_name": name, "next_tool_args": args}


def test_a_tool_that_a_react_step_calls_in_turn_has_a_call_id_of_its_own(
    server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    @streamll.instrument
    class Agent(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.agent = dspy.ReAct("question -> answer", tools=[briefing], max_iters=3)

        def forward(self, question: str) -> Any:
            return self.agent(question=question)

    server.configure(responder=briefing_responder)
    with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
        prediction = Agent()(question=QUESTION)
    assert prediction.trajectory["observation_0"] == "Briefing: Sunny and 21 C in Paris."
    assert streamll.flush(10)

    outer, inner, finish = memory_sink.of_type("tool_start")
    assert [start.data["tool_name"] for start in (outer, inner, finish)] == ["briefing", "weather", "finish"]
    chooser = outer.data["lm_call_id"]
    assert outer.data["tool_call_id"] == f"call_{chooser}"  # the step's own tool: named after the LM call
    assert inner.data["tool_call_id"] != outer.data["tool_call_id"] and inner.data["tool_call_id"].startswith("call_")
    assert (inner.data["step"], inner.data["lm_call_id"], inner.parent_id) == (0, chooser, outer.event_id)
    assert finish.data["tool_call_id"] == f"call_{finish.data['lm_call_id']}" and finish.data["step"] == 1
    ends = {end.data["tool_call_id"]: end.data["tool_name"] for end in memory_sink.of_type("tool_end")}
    assert [ends[start.data["tool_call_id"]] for start in (outer, inner, finish)] == ["briefing", "weather", "finish"]


# ------------------------------------------------------------------ status texts of tool ends


class ResultNarrator(dspy.streaming.StatusMessageProvider):
    def tool_end_status_message(self, outputs: Any) -> str:
        return f"the tool returned {outputs!r}"


def test_a_tool_end_status_text_tells_the_result_of_its_own_call(
    server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    """Each tool that returned gets the provider's text about its result; a failing tool and ``finish`` none."""
    server.configure(responder=react_responder)
    with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
        react_agent(status_messages=ResultNarrator())(question=QUESTION)
    assert streamll.flush(10)
    names = {start.data["tool_call_id"]: start.data["tool_name"] for start in memory_sink.of_type("tool_start")}
    ends = [event for event in memory_sink.of_type("status") if event.data["stage"] == "tool_end"]
    assert [(names[event.data["tool_call_id"]], event.data["message"]) for event in ends] == [
        ("weather", "the tool returned 'Sunny and 21 C in Paris.'"),
        ("population", "the tool returned 2100000"),
    ]


# ------------------------------------------------------------------ native calls: which LM call chose a tool


def tools_by_name() -> dict[str, dspy.Tool]:
    return {"weather": dspy.Tool(weather), "population": dspy.Tool(population)}


@streamll.instrument(stream_fields=["tool_calls"])
class CallChosen(dspy.Module):
    """Lets the LM choose tools natively, then calls each chosen ``dspy.Tool`` itself (not with ``execute``)."""

    def __init__(self) -> None:
        super().__init__()
        self.pick = dspy.Predict(PickTools)

    def forward(self, question: str) -> Any:
        tools = tools_by_name()
        prediction = self.pick(question=question, tools=list(tools.values()))
        return [tools[call.name](**call.args) for call in prediction.tool_calls.tool_calls]


def test_a_tool_the_user_calls_for_a_native_call_is_linked_to_that_call(
    server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    """Without ``execute``, the tool's name and arguments find the LM's call: its id and its LM call."""
    server.configure(responder=lambda request: {"tool_calls": NATIVE_CALLS})
    with dspy.context(lm=native_lm(server), adapter=native_adapter()):
        assert CallChosen()(question=QUESTION) == ["Sunny and 21 C in Paris.", 2_100_000]
    assert streamll.flush(10)

    (lm_start,) = lm_starts(memory_sink)
    chosen = [(t.data["tool_name"], t.data["tool_call_id"]) for t in memory_sink.tokens("tool_calls")]
    starts = memory_sink.of_type("tool_start")
    assert [(start.data["tool_name"], start.data["tool_call_id"]) for start in starts] == list(dict.fromkeys(chosen))
    assert all(start.data["lm_call_id"] == lm_start.event_id for start in starts)


def distinct_ids(request: Any) -> dict[str, Any]:
    """The native calls, with ids that tell the first request from the second."""
    which = "first" if "(first)" in request.user_text else "second"
    return {"tool_calls": [{**call, "id": f"call_{which}_{call['name']}"} for call in NATIVE_CALLS]}


@streamll.instrument(stream_fields=["tool_calls"])
class ExecuteTwice(dspy.Module):
    """Asks the LM twice the same; executes the second answer's calls first."""

    def __init__(self) -> None:
        super().__init__()
        self.pick = dspy.Predict(PickTools)

    def forward(self, question: str) -> Any:
        tools = list(tools_by_name().values())
        first = self.pick(question=f"{question} (first)", tools=tools)
        second = self.pick(question=f"{question} (second)", tools=tools)
        return [call.execute(functions=tools) for p in (second, first) for call in p.tool_calls.tool_calls]


def test_an_executed_call_is_linked_by_its_id_to_the_lm_call_that_chose_it(
    server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    """Two LM calls chose the same tools with the same arguments: the call's id tells which one it is."""
    if "id" not in ToolCalls.ToolCall.model_fields:
        allowed_skip(f"dspy {dspy.__version__}'s ToolCall has no id: a call is matched by its name and arguments")
    server.configure(responder=distinct_ids)
    with dspy.context(lm=native_lm(server), adapter=native_adapter()):
        assert ExecuteTwice()(question=QUESTION) == ["Sunny and 21 C in Paris.", 2_100_000] * 2
    assert streamll.flush(10)

    first, second = lm_starts(memory_sink)
    starts = memory_sink.of_type("tool_start")
    assert [(start.data["tool_call_id"], start.data["lm_call_id"]) for start in starts] == [
        ("call_second_weather", second.event_id),
        ("call_second_population", second.event_id),
        ("call_first_weather", first.event_id),
        ("call_first_population", first.event_id),
    ]


# ------------------------------------------------------------------ ids set inside a tool


def sign_in(user: str) -> str:
    """A tool that attaches the user's id to every later event (``streamll.set_context``)."""
    streamll.set_context(user_id=user)
    return f"signed in {user}"


def test_a_tool_that_sets_context_ids_ends_with_the_tags_it_started_with(memory_sink: MemorySink) -> None:
    """The tool's span keeps its tags; the ids it set hold for what the program does after it."""

    @streamll.instrument
    class SignIn(dspy.Module):
        def forward(self, user: str) -> Any:
            result = dspy.Tool(sign_in)(user=user)
            streamll.emit("after_the_tool")
            return result

    def run() -> Any:
        streamll.set_context(request_id="r-1")
        return SignIn()(user="ada")

    assert contextvars.copy_context().run(run) == "signed in ada"  # the ids stay out of other tests
    assert streamll.flush(10)
    (start,) = memory_sink.of_type("tool_start")
    (end,) = memory_sink.of_type("tool_end")
    assert start.tags == end.tags == {"request_id": "r-1"}
    (after,) = memory_sink.of_type("after_the_tool")
    assert after.tags == {"request_id": "r-1", "user_id": "ada"}


# ------------------------------------------------------------------ ReAct without LM spans


def test_react_tools_keep_ids_of_their_own_when_no_lm_call_can_be_followed(
    server: OfflineLMServer, memory_sink: MemorySink, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug opening LM spans: no tool claims an LM call it cannot name, and no two tool calls share an id."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("LM span bug")

    monkeypatch.setattr(hooks, "LMSpan", broken)
    server.configure(responder=react_responder)
    with caplog.at_level(logging.ERROR, logger="streamll"), dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
        assert react_agent()(question=QUESTION).answer == ANSWER
    assert {record.getMessage() for record in caplog.records} == {"streamll: could not open an LM span"}
    assert streamll.flush(10)
    starts = memory_sink.of_type("tool_start")
    assert [(start.data["tool_name"], start.data["step"]) for start in starts] == [
        (name, step) for step, (name, _) in enumerate(PLAN)
    ]
    assert all("lm_call_id" not in start.data for start in starts)
    ids = [start.data["tool_call_id"] for start in starts]
    assert len(set(ids)) == len(ids) and all(len(call_id) > len("call_") for call_id in ids)
