"""Agent programs the tool-event tests share: a ReAct agent with tools, and native function calling.

The offline LM server plays the model: :func:`react_responder` walks ReAct through
``weather``, then ``lookup`` (which raises; ReAct shows the error to the LM), then
``population``, then ``finish``; :func:`native_responder` answers a request that
offers tools with two native tool calls.
"""

from __future__ import annotations

import json
from typing import Any

import dspy
import streamll

PLAN: list[tuple[str, dict[str, Any]]] = [
    ("weather", {"city": "Paris"}),
    ("lookup", {"term": "Paris"}),
    ("population", {"city": "Paris"}),
    ("finish", {}),
]
"""The tool each ReAct step chooses, with its arguments."""
ANSWER = "Paris is sunny and has about 2.1 million people."
REACT_FIELDS = ["next_thought", "next_tool_name", "next_tool_args", "answer"]


def weather(city: str) -> str:
    """Today's weather in a city."""
    return f"Sunny and 21 C in {city}."


def population(city: str) -> int:
    """How many people live in a city."""
    return 2_100_000


def lookup(term: str) -> str:
    """Look a term up in the encyclopedia (it is offline: always raises)."""
    raise KeyError(f"no entry for {term}")


def step_of(request: Any) -> int:
    """How many observations the trajectory in the prompt already holds."""
    return sum(1 for index in range(10) if f"observation_{index}" in request.user_text)


def react_responder(request: Any) -> dict[str, Any]:
    """Follow :data:`PLAN`, one step per request; the extract step answers."""
    if "next_tool_name" not in request.output_fields:
        return {"answer": ANSWER}
    step = step_of(request)
    name, args = PLAN[min(step, len(PLAN) - 1)]
    return {"next_thought": f"Step {step}: I will use {name}.", "next_tool_name": name, "next_tool_args": args}


def react_agent(stream_fields: list[str] | None = None, **options: Any) -> Any:
    """An instrumented module around ``dspy.ReAct`` with three tools (sync ``forward`` and async ``aforward``)."""

    @streamll.instrument(stream_fields=stream_fields if stream_fields is not None else REACT_FIELDS, **options)
    class Agent(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.agent = dspy.ReAct("question -> answer", tools=[weather, lookup, population], max_iters=6)

        def forward(self, question: str) -> Any:
            return self.agent(question=question)

        async def aforward(self, question: str) -> Any:
            return await self.agent.acall(question=question)

    return Agent()


NATIVE_CALLS = [
    {"name": "weather", "arguments": {"city": "Paris"}},
    {"name": "population", "arguments": {"city": "Paris"}},
]


def native_responder(request: Any) -> dict[str, Any]:
    """Two native tool calls for a request that offers tools."""
    return {"tool_calls": NATIVE_CALLS}


def arguments_text(call: dict[str, Any]) -> str:
    """The arguments' JSON text as the offline server sends it."""
    return json.dumps(call["arguments"])


class PickTools(dspy.Signature):
    """Choose the tools that answer the question."""

    question: str = dspy.InputField()
    tools: list[dspy.Tool] = dspy.InputField()
    tool_calls: dspy.ToolCalls = dspy.OutputField()


def native_agent(stream_fields: list[str] | None = None) -> Any:
    """An instrumented module that lets the LM pick tools natively and runs each call with ``execute``."""

    @streamll.instrument(stream_fields=stream_fields if stream_fields is not None else ["tool_calls"])
    class NativeAgent(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pick = dspy.Predict(PickTools)

        def forward(self, question: str) -> Any:
            tools = [dspy.Tool(weather), dspy.Tool(population)]
            prediction = self.pick(question=question, tools=tools)
            return [call.execute(functions=tools) for call in prediction.tool_calls.tool_calls]

    return NativeAgent()


def native_lm(server: Any, engine: str | None = None) -> Any:
    """An LM DSPy knows supports function calling (``gpt-4o-mini``), served offline."""
    return server.lm("gpt-4o-mini", **({"engine": engine} if engine else {}))


def native_adapter() -> Any:
    """The ChatAdapter with native function calling on."""
    return dspy.ChatAdapter(use_native_function_calling=True)


class Table:
    """A value like a pandas DataFrame (a tool's result or argument): comparing it gives an ambiguous truth value."""

    def __ne__(self, other: object) -> Any:
        return self

    def __eq__(self, other: object) -> Any:
        return self

    def __bool__(self) -> bool:
        raise ValueError("the truth value of a Table is ambiguous")

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return "<Table>"
