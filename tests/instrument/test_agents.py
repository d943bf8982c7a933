"""Agents stream: tool events, ReAct iterations and native tool-call arguments, through DSPy's real path.

Every test drives a real DSPy program against the offline LM server and reads
the events a MemorySink received.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import traceback
from typing import Any

import dspy
import pytest
import streamll
from streamll import MemorySink
from streamll.core.events import Event, TokenEvent, ToolEndEvent, ToolErrorEvent, ToolStartEvent
from streamll.core.tools import RESULT_LIMIT
from streamll.testing import OfflineLMServer

from tests.agent_programs import (
    ANSWER,
    NATIVE_CALLS,
    PLAN,
    Table,
    arguments_text,
    native_adapter,
    native_agent,
    native_lm,
    native_responder,
    react_agent,
    react_responder,
)

QUESTION = "What is Paris like today?"


def run_react(server: OfflineLMServer, sink: MemorySink, mode: str = "sync", **options: Any) -> Any:
    server.configure(responder=react_responder)
    agent = react_agent(**options)
    with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
        prediction = agent(question=QUESTION) if mode == "sync" else asyncio.run(agent.acall(question=QUESTION))
    assert streamll.flush(10)
    return prediction


def of_step(events: list[Event], step: int) -> list[Event]:
    return [event for event in events if event.data.get("step") == step]


def tool_calls(sink: MemorySink) -> list[tuple[Event, Event]]:
    """(tool_start, its tool_end or tool_error) pairs in order, matched by tool_call_id."""
    ends = {
        event.data["tool_call_id"]: event for event in sink.events if event.event_type in ("tool_end", "tool_error")
    }
    return [(start, ends[start.data["tool_call_id"]]) for start in sink.of_type("tool_start")]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_react_with_tools_shows_every_iteration_as_it_happens(
    server: OfflineLMServer, memory_sink: MemorySink, mode: str
) -> None:
    prediction = run_react(server, memory_sink, mode)
    assert prediction.answer == ANSWER

    calls = tool_calls(memory_sink)
    assert [start.data["tool_name"] for start, _ in calls] == [name for name, _ in PLAN]
    lm_starts = {event.event_id for event in memory_sink.of_type("start") if event.operation == "lm"}
    for step, ((start, end), (name, args)) in enumerate(zip(calls, PLAN, strict=True)):
        assert isinstance(start, ToolStartEvent) and start.operation == "tool" and start.module_name == name
        assert start.data["arguments"] == args and start.data["step"] == end.data["step"] == step
        assert end.data["span_id"] == start.event_id and end.data["duration_ms"] >= 0
        # the LM call that chose the tool: its start event, and the parent of the step's tokens
        assert start.data["lm_call_id"] in lm_starts
        assert start.data["tool_call_id"] == f"call_{start.data['lm_call_id']}"
        tokens = [event for event in of_step(memory_sink.tokens(), step)]
        assert {token.parent_id for token in tokens} == {start.data["lm_call_id"]}
        texts = {
            field: "".join(t.token for t in tokens if t.field == field) for field in ("next_thought", "next_tool_name")
        }
        assert texts == {"next_thought": f"Step {step}: I will use {name}.", "next_tool_name": name}
        assert json.loads("".join(t.token for t in tokens if t.field == "next_tool_args")) == args
        # in order: the step's tokens, then its tool call, then the next step
        assert max(token.sequence for token in tokens) < start.sequence < end.sequence
        later = of_step(memory_sink.tokens(), step + 1)
        assert all(token.sequence > end.sequence for token in later)

    weather, lookup, population, finish = (end for _, end in calls)
    assert isinstance(weather, ToolEndEvent) and weather.data["result"] == "Sunny and 21 C in Paris."
    assert population.data["result"] == "2100000" and population.data["result_type"] == "int"
    assert isinstance(lookup, ToolErrorEvent)
    assert lookup.data["error_type"] == "KeyError" and "no entry for Paris" in lookup.data["error_message"]
    assert finish.data["result"] == "Completed."
    # ReAct caught the error and showed it to the LM, exactly as without streamll
    assert "Execution error in lookup" in prediction.trajectory["observation_1"]

    answer = memory_sink.tokens("answer")
    assert "".join(token.token for token in answer) == ANSWER
    assert all("step" not in token.data for token in answer)


def test_a_tool_is_seen_while_it_runs(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    seen: list[bool] = []

    def watched(city: str) -> str:
        """A tool that waits until its own tool_start event reached the sink."""
        seen.append(memory_sink.wait_for(lambda events: any(e.event_type == "tool_start" for e in events), 5))
        return "ok"

    @streamll.instrument
    class Direct(dspy.Module):
        def forward(self) -> Any:
            return dspy.Tool(watched)(city="Paris")

    assert Direct()() == "ok"
    assert seen == [True]


def test_tools_called_in_threads_dspy_parallel_starts_belong_to_the_run(memory_sink: MemorySink) -> None:
    def forecast(city: str) -> str:
        """The weather in a city."""
        return f"Sunny in {city}."

    @streamll.instrument
    class Forecasts(dspy.Module):
        def forward(self, cities: list[str]) -> Any:
            parallel = dspy.Parallel(num_threads=2, disable_progress_bar=True)
            return parallel([(dspy.Tool(forecast), {"city": city}) for city in cities])

    cities = ["Paris", "Lyon", "Nice", "Lille"]
    with streamll.execution() as run:
        assert Forecasts()(cities=cities) == [f"Sunny in {city}." for city in cities]
        assert streamll.flush(10)
        own = [event for event in memory_sink.events if event.execution_id == run.execution_id]
        module_start = next(event for event in own if event.operation == "module" and event.event_type == "start")
        assert sorted(event.data["arguments"]["city"] for event in own if event.event_type == "tool_start") == sorted(
            cities
        )
        assert {event.parent_id for event in own if event.event_type in ("tool_start", "tool_end")} == {
            module_start.event_id
        }
        streamll.emit("after_the_tools")  # the caller's own context is as it was
    assert streamll.flush(10)
    (after,) = memory_sink.of_type("after_the_tools")
    assert after.execution_id == run.execution_id


def forecast(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}."


@streamll.instrument
class ForecastThenEmit(dspy.Module):
    def forward(self, city: str) -> Any:
        result = dspy.Tool(forecast)(city=city)
        streamll.emit("after_the_tool")  # still in the module's span and run
        return result


def test_a_tool_span_that_cannot_open_leaves_the_tool_call_as_it_is(
    memory_sink: MemorySink, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in streamll's tool spans is logged once; the tool's result and the caller's context are untouched."""
    from streamll.streaming import tools

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("span bug")

    monkeypatch.setattr(tools.ToolSpan, "open", broken)
    with caplog.at_level(logging.ERROR, logger="streamll"):
        assert ForecastThenEmit()(city="Paris") == "Sunny in Paris."
    assert streamll.flush(10)
    assert [record.getMessage() for record in caplog.records] == ["streamll: could not open a tool span"]
    assert caplog.records[0].exc_info is not None and str(caplog.records[0].exc_info[1]) == "span bug"
    module_start = next(event for event in memory_sink.events if event.operation == "module")
    (after,) = memory_sink.of_type("after_the_tool")
    assert (after.execution_id, after.parent_id) == (module_start.execution_id, module_start.event_id)
    assert memory_sink.of_type("tool_start") == []


def test_a_tool_returning_a_value_that_cannot_be_compared_still_ends_its_span(
    memory_sink: MemorySink, caplog: pytest.LogCaptureFixture
) -> None:
    def table(rows: int) -> Table:
        """A table of results."""
        return Table()

    @streamll.instrument
    class Tabulate(dspy.Module):
        def forward(self, rows: int) -> Any:
            result = dspy.Tool(table)(rows=rows)
            streamll.emit("after_the_tool")
            return result

    with caplog.at_level(logging.ERROR, logger="streamll"):
        result = Tabulate()(rows=3)
    assert isinstance(result, Table)
    assert caplog.records == []
    assert streamll.flush(10)
    (tool_start,) = memory_sink.of_type("tool_start")
    (tool_end,) = memory_sink.of_type("tool_end")
    assert tool_end.parent_id == tool_start.parent_id
    assert (tool_end.data["result"], tool_end.data["result_type"]) == ("<Table>", "Table")
    module_start = next(event for event in memory_sink.events if event.operation == "module")
    (after,) = memory_sink.of_type("after_the_tool")
    assert after.parent_id == module_start.event_id  # the tool's span ended: the module's is current again


def test_status_messages_are_dspys_by_default(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    run_react(server, memory_sink)
    messages = [(event.data["stage"], event.data["message"]) for event in memory_sink.of_type("status")]
    expected_tools = ["weather", "population"]  # the failing lookup has no end message; finish has none at all
    assert [text for stage, text in messages if stage == "tool_start"] == [
        f"Calling tool {name}..." for name in ("weather", "lookup", "population")
    ]
    assert [stage for stage, _ in messages if stage == "tool_end"] == ["tool_end"] * len(expected_tools)
    assert {stage for stage, _ in messages} == {"tool_start", "tool_end"}  # DSPy's provider says nothing else


class Narrator(dspy.streaming.StatusMessageProvider):
    def tool_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str:
        return f"using {instance.name} with {sorted(inputs)}"

    def module_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str:
        return f"starting {type(instance).__name__}"

    def lm_end_status_message(self, outputs: Any) -> str:
        return "the LM answered"


def test_a_status_message_provider_of_ones_own(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    run_react(server, memory_sink, status_messages=Narrator())
    messages = [(event.data["stage"], event.data["message"]) for event in memory_sink.of_type("status")]
    assert ("tool_start", "using weather with ['city']") in messages
    assert ("module_start", "starting Agent") in messages and ("module_start", "starting Predict") in messages
    assert messages.count(("lm_end", "the LM answered")) == len(PLAN) + 1
    inherited = dspy.streaming.StatusMessageProvider().tool_end_status_message(None)
    assert messages.count(("tool_end", inherited)) == 2  # weather and population; lookup raised
    starts = memory_sink.of_type("tool_start")
    assert starts[0].data["status"] == "using weather with ['city']"


class LMNarrator(dspy.streaming.StatusMessageProvider):
    def lm_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str:
        return "asking the LM"

    def lm_end_status_message(self, outputs: Any) -> str:
        return "the LM answered"

    def module_end_status_message(self, outputs: Any) -> str:
        return f"{type(outputs).__name__} ready"


def test_status_events_belong_to_the_run_and_name_the_lm(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    @streamll.instrument(status_messages=LMNarrator())
    class Asker(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("question -> answer")

        def forward(self, question: str) -> Any:
            return self.predict(question=question)

    own = MemorySink(name="run-own")
    lm = server.lm()
    try:
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter()), streamll.execution(sinks=[own]):
            Asker()(question=QUESTION)
        assert streamll.flush(10)
    finally:
        own.stop()
    assert memory_sink.of_type("status") == [], "the run's own sinks, not the configured ones"
    statuses = [(event.data["stage"], event.data["message"], event.module_name) for event in own.of_type("status")]
    assert statuses == [
        ("lm_start", "asking the LM", lm.model),
        ("lm_end", "the LM answered", lm.model),
        ("module_end", "Prediction ready", None),  # the predictor's
        ("module_end", "Prediction ready", None),  # the instrumented module's
    ]


class FaultyNarrator(dspy.streaming.StatusMessageProvider):
    def lm_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str:
        raise RuntimeError("provider bug")

    def lm_end_status_message(self, outputs: Any) -> Any:
        return {"text": "not a message"}

    def module_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str:
        return ""


def test_a_provider_that_fails_or_says_nothing_adds_no_status_event(
    server: OfflineLMServer, memory_sink: MemorySink, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="streamll"):
        prediction = run_react(server, memory_sink, status_messages=FaultyNarrator())
    assert prediction.answer == ANSWER
    stages = {event.data["stage"] for event in memory_sink.of_type("status")}
    assert stages == {"tool_start", "tool_end"}, "only the stages the provider answers with a text"
    failures = [r for r in caplog.records if r.getMessage() == "streamll: the status message provider failed"]
    assert len(failures) == len(PLAN) + 1 and all(r.exc_info and str(r.exc_info[1]) == "provider bug" for r in failures)


def test_status_messages_can_be_turned_off(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    run_react(server, memory_sink, status_messages=False)
    assert memory_sink.of_type("status") == []
    assert len(memory_sink.of_type("tool_start")) == len(PLAN)


def test_status_messages_must_be_a_provider() -> None:
    with pytest.raises(
        TypeError, match=r"status_messages must be True, False or a dspy\.streaming\.StatusMessageProvider"
    ):
        streamll.instrument(status_messages="loud")


@pytest.mark.parametrize(
    ("engine", "adapter"),
    [(None, native_adapter), ("litellm", native_adapter), (None, dspy.JSONAdapter)],
    ids=["native-engine", "litellm", "json-adapter"],
)
def test_native_tool_calls_stream_their_arguments_per_call(
    server: OfflineLMServer, memory_sink: MemorySink, engine: str | None, adapter: Any
) -> None:
    server.configure(responder=native_responder)
    with dspy.context(lm=native_lm(server, engine), adapter=adapter()):
        results = native_agent()(question=QUESTION)
    assert results == ["Sunny and 21 C in Paris.", 2_100_000]
    assert streamll.flush(10)

    lm_start = next(event for event in memory_sink.of_type("start") if event.operation == "lm")
    lm_end = next(event for event in memory_sink.of_type("end") if event.operation == "lm")
    assert lm_end.data["finish_reason"] == "tool_calls" and lm_end.data["streamed"] is True
    tokens = memory_sink.tokens("tool_calls")
    by_call: dict[str, list[TokenEvent]] = {}
    for token in tokens:
        by_call.setdefault(token.data["tool_call_id"], []).append(token)
    assert len(by_call) == len(NATIVE_CALLS)
    starts = memory_sink.of_type("tool_start")
    for index, (call, start) in enumerate(zip(NATIVE_CALLS, starts, strict=True)):
        call_tokens = by_call[start.data["tool_call_id"]]  # the LM's own id links tokens and tool events
        assert "".join(token.token for token in call_tokens) == arguments_text(call)
        assert [token.token_index for token in call_tokens] == list(range(len(call_tokens)))
        assert [token.finish_reason for token in call_tokens][-1] == "tool_calls"
        assert all(token.finish_reason is None for token in call_tokens[:-1])
        assert {(token.data["tool_name"], token.data["tool_index"]) for token in call_tokens} == {(call["name"], index)}
        assert {token.parent_id for token in call_tokens} == {lm_start.event_id}
        assert start.data["tool_name"] == call["name"] and start.data["arguments"] == call["arguments"]
        assert start.data["lm_call_id"] == lm_start.event_id
        assert len(call_tokens) > 1  # streamed in pieces, not one blob
        assert max(token.sequence for token in call_tokens) < start.sequence
    ends = memory_sink.of_type("tool_end")
    assert [end.data["tool_call_id"] for end in ends] == [start.data["tool_call_id"] for start in starts]


def test_cached_tool_calls_replay_each_call_linked(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    server.configure(responder=native_responder)
    cached = server.lm("gpt-4o-mini", cache=True, temperature=0.654321)  # a request nothing else sends
    with dspy.context(lm=cached, adapter=native_adapter()):
        native_agent()(question="cache these calls")
        requests = len(server.requests)
        assert streamll.flush(10)
        memory_sink.clear()
        assert native_agent()(question="cache these calls") == ["Sunny and 21 C in Paris.", 2_100_000]
    assert len(server.requests) == requests, "the second call must come from DSPy's cache"
    assert streamll.flush(10)

    tokens = memory_sink.tokens("tool_calls")
    assert [(t.data["tool_name"], t.data["tool_index"], t.finish_reason, t.data["source"]) for t in tokens] == [
        ("weather", 0, "cached", "cache"),
        ("population", 1, "cached", "cache"),
    ]
    assert [json.loads(token.token) for token in tokens] == [call["arguments"] for call in NATIVE_CALLS]
    starts = memory_sink.of_type("tool_start")
    assert [token.data["tool_call_id"] for token in tokens] == [start.data["tool_call_id"] for start in starts]


def test_tool_calls_stream_only_when_chosen(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    server.configure(responder=native_responder)
    with dspy.context(lm=native_lm(server), adapter=native_adapter()):
        native_agent(stream_fields=[])(question=QUESTION)
    assert streamll.flush(10)
    assert memory_sink.tokens() == []
    starts = memory_sink.of_type("tool_start")
    assert [start.data["tool_name"] for start in starts] == ["weather", "population"]
    assert all(start.data["tool_call_id"].startswith("call_") and "lm_call_id" in start.data for start in starts)


def test_a_raising_tool_raises_exactly_as_without_streamll(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    def broken(x: int) -> int:
        """Always fails."""
        raise ValueError(f"bad {x}")

    tool = dspy.Tool(broken)

    def frames(exc: BaseException) -> list[str]:
        return [frame.name for frame in traceback.extract_tb(exc.__traceback__)]

    try:
        tool(x=1)
    except ValueError as exc:
        plain = frames(exc)

    @streamll.instrument
    class Direct(dspy.Module):
        def forward(self) -> Any:
            try:
                return tool(x=1)
            except ValueError as exc:
                return exc

    caught = Direct()()
    assert isinstance(caught, ValueError) and str(caught) == "bad 1"
    assert frames(caught)[-len(plain) + 1 :] == plain[1:]  # below the call site, the very same frames
    assert not any("streamll" in frame.filename for frame in traceback.extract_tb(caught.__traceback__))
    assert streamll.flush(10)
    (error,) = memory_sink.of_type("tool_error")
    assert error.data["error_type"] == "ValueError" and error.data["error_message"] == "bad 1"


def test_big_results_are_cut(memory_sink: MemorySink) -> None:
    def dump() -> str:
        """A large result."""
        return "x" * (RESULT_LIMIT * 3)

    @streamll.instrument
    class Direct(dspy.Module):
        def forward(self) -> Any:
            return dspy.Tool(dump)()

    assert len(Direct()()) == RESULT_LIMIT * 3  # the program still gets all of it
    assert streamll.flush(10)
    (end,) = memory_sink.of_type("tool_end")
    assert len(end.data["result"]) == RESULT_LIMIT
    assert end.data["result_truncated"] is True and end.data["result_length"] == RESULT_LIMIT * 3


def test_tools_outside_an_instrumented_call_emit_nothing(memory_sink: MemorySink) -> None:
    """Even while an instrumented call runs in another thread (DSPy's tool methods are wrapped then)."""
    inside, release = threading.Event(), threading.Event()

    def double(x: int) -> int:
        """Twice x."""
        return 2 * x

    @streamll.instrument
    class Waiting(dspy.Module):
        def forward(self) -> Any:
            inside.set()
            assert release.wait(10)
            return None

    worker = threading.Thread(target=Waiting())
    worker.start()
    try:
        assert inside.wait(10)
        assert dspy.Tool(double)(x=2) == 4
    finally:
        release.set()
        worker.join(10)
    assert streamll.flush(10)
    assert memory_sink.of_type("tool_start") == [] and len(memory_sink.of_type("start")) == 1


def test_the_terminal_shows_tool_calls_as_lines(server: OfflineLMServer) -> None:
    output = io.StringIO()
    sink = streamll.TerminalSink(output, show_tokens=False)
    streamll.configure(sinks=[sink])
    try:
        run_react(server, MemorySink(name="unused"))
    finally:
        streamll.configure(sinks=None)
        sink.stop()
    lines = [line for line in output.getvalue().splitlines() if line.startswith(("[TOOL", "[STATUS"))]
    assert lines[:2] == ['[TOOL_START] weather({"city": "Paris"}) (step 0)', "[STATUS] Calling tool weather..."]
    assert lines[2].startswith('[TOOL_END] weather -> "Sunny and 21 C in Paris." (')
    assert any(line.startswith("[TOOL_ERROR] lookup (") and "KeyError" in line for line in lines)
