"""The tool calls LM replies choose, as ``ToolCall.execute`` claims them (native function calling).

DSPy's real path is in ``test_agents.py``; these pin the bookkeeping every LM
reply shape and DSPy release goes through: OpenAI-shaped calls as dicts or as
objects, a claim per chosen call, and the bound on what a long run keeps.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from streamll.streaming.native_tools import ChosenCall, ChosenCalls, record_chosen

from tests.agent_programs import Table


def chosen_from(*calls: Any, lm_call_id: str = "lm-1") -> ChosenCalls:
    run = SimpleNamespace(chosen_tools=ChosenCalls())
    record_chosen(run, lm_call_id, [{"tool_calls": list(calls)}])
    return run.chosen_tools


def as_dict(call_id: str | None, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


@pytest.mark.parametrize("shape", ["dict", "object"])
def test_a_replys_tool_calls_are_recorded_as_dicts_or_objects(shape: str) -> None:
    if shape == "dict":
        calls = [as_dict("call_a", "weather", '{"city": "Paris"}'), as_dict("call_b", "add", "not json")]
    else:
        calls = [
            SimpleNamespace(id="call_a", function=SimpleNamespace(name="weather", arguments='{"city": "Paris"}')),
            SimpleNamespace(function=SimpleNamespace(name="add", arguments="not json")),  # no id attribute at all
        ]
    chosen = chosen_from(*calls)
    assert [(c.tool_call_id, c.name, c.arguments, c.lm_call_id) for c in chosen.calls] == [
        ("call_a", "weather", {"city": "Paris"}, "lm-1"),
        (None if shape == "object" else "call_b", "add", "not json", "lm-1"),
    ]


def test_an_empty_tool_call_id_counts_as_none() -> None:
    chosen = chosen_from(as_dict("", "weather", '{"city": "Paris"}'))
    assert [call.tool_call_id for call in chosen.calls] == [None]


def test_each_chosen_call_is_claimed_once_by_id_or_by_name_and_arguments() -> None:
    chosen = chosen_from(
        as_dict("call_a", "weather", '{"city": "Paris"}'),
        as_dict("call_b", "weather", '{"city": "Paris"}'),
    )
    assert chosen.peek("weather", {"city": "Paris"}) == "call_a"
    first = chosen.claim(None, "weather", {"city": "Paris"})  # older DSPy: no id on the call
    assert first is not None and first.tool_call_id == "call_a"
    assert chosen.peek("weather", {"city": "Paris"}) == "call_b", "a claimed call is not offered again"
    second = chosen.claim("call_b", "weather", {"city": "Paris"})
    assert second is not None and second.tool_call_id == "call_b"
    assert chosen.claim("call_b", "weather", {"city": "Paris"}) is None
    assert chosen.claim(None, "weather", {"city": "Paris"}) is None
    assert chosen.claim(None, "weather", {"city": "Lyon"}) is None


def test_an_argument_that_cannot_be_compared_matches_no_chosen_call() -> None:
    chosen = chosen_from(as_dict(None, "tabulate", '{"rows": 3}'))
    assert chosen.peek("tabulate", {"rows": Table()}) is None
    assert chosen.claim(None, "tabulate", {"rows": Table()}) is None
    assert chosen.claim(None, "tabulate", {"rows": 3}) is not None


def test_a_long_run_keeps_only_the_latest_256_chosen_calls() -> None:
    chosen = ChosenCalls()
    for index in range(300):
        chosen.add(ChosenCall(f"call_{index}", "step", {"n": index}, "lm"))
    assert len(chosen.calls) == 256
    assert chosen.calls[0].tool_call_id == "call_44" and chosen.calls[-1].tool_call_id == "call_299"
    assert chosen.claim("call_43", "step", {"n": 43}) is None
