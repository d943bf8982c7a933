"""A prediction DSPy's cache answers: its chosen fields replayed as tokens where live ones would be."""

from __future__ import annotations

import dspy
import streamll
from streamll import MemorySink
from streamll.testing import OfflineLMServer

from tests.agent_programs import ANSWER, PLAN, react_agent, react_responder
from tests.small_programs import counted


def test_a_cached_react_run_replays_each_steps_fields_in_that_step_with_the_runs_tags(
    server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    """Each replayed token carries its ReAct step, the tags set for the call, and the agent's span as parent."""
    server.configure(responder=react_responder)
    cached = server.lm(cache=True, temperature=0.246813)  # a request nothing else sends
    with dspy.context(lm=cached, adapter=dspy.ChatAdapter()):
        react_agent()(question="Weather and people in Paris?")
        requests = len(server.requests)
        assert streamll.flush(10)
        memory_sink.clear()
        streamll.set_context(user_id="u1")
        try:
            assert react_agent()(question="Weather and people in Paris?").answer == ANSWER
        finally:
            streamll.set_context(user_id=None)
    assert len(server.requests) == requests, "the second run must come from DSPy's cache"
    assert streamll.flush(10)

    tokens = memory_sink.tokens()
    (agent,) = [event for event in memory_sink.of_type("start") if event.operation == "module"]
    assert {(token.data["source"], token.parent_id) for token in tokens} == {("cache", agent.event_id)}
    assert all(token.tags == {"user_id": "u1"} for token in tokens)
    steps = [(token.data.get("step"), token.field, token.token) for token in tokens if token.field != "next_tool_args"]
    assert steps == [
        *[(step, field, text) for step, (name, _) in enumerate(PLAN) for field, text in
          (("next_thought", f"Step {step}: I will use {name}."), ("next_tool_name", name))],
        (None, "answer", ANSWER),
    ]  # fmt: skip
    assert [token.data["value"] for token in tokens if token.field == "next_tool_args"] == [args for _, args in PLAN]
    typed = {token.field for token in tokens if "field_type" in token.data}
    assert typed == {"next_tool_name", "next_tool_args"}
    assert all(("value" in token.data) == (token.field in typed) for token in tokens), "text fields have no value"


def test_a_json_fallback_answered_from_the_cache_replays_its_fields(
    server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    """As a live fallback streams again: the ChatAdapter's reply does not parse, DSPy's cache holds the JSON one."""
    server.configure(responder=lambda request: {"count": "many"} if request.adapter == "chat" else {"count": 4})
    cached = server.lm(cache=True, temperature=0.975312)  # a request nothing else sends
    with dspy.context(lm=cached, adapter=dspy.JSONAdapter()):
        dspy.Predict("question -> answer, count: int")(question="How many?")  # the JSON request, now cached

    Counted = counted(["count"])

    with dspy.context(lm=cached, adapter=dspy.ChatAdapter()):
        prediction = Counted()(question="How many?")
    assert len(server.requests) == 2, "the JSON request, then the chat one (the fallback came from the cache)"
    assert streamll.flush(10)

    counts = memory_sink.tokens("count")
    assert [(t.token, t.data["source"], t.data.get("value")) for t in counts] == [
        ("many", "stream", None),
        ("4", "cache", 4),
    ]
    assert prediction.count == 4
