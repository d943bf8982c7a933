"""Native function calling: the tool calls LM replies choose, linked to the calls that run them.

An LM reply with tool calls is recorded per run (:class:`ChosenCalls`: id, name,
arguments, the LM call's start ``event_id``); ``ToolCall.execute`` claims its entry
by id (dspy >= 3.4 keeps the LM's id on the call) or by name and arguments (older
DSPy), so its ``tool_start`` carries the LM's ``tool_call_id`` and ``lm_call_id``.
A ``dspy.ToolCalls`` value served from DSPy's cache replays each call's arguments.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from streamll.streaming.fields import CACHED, FieldStream, LMCallStream


@dataclass
class ChosenCall:
    """A tool call an LM reply asked for (native function calling)."""

    tool_call_id: str | None
    name: str
    arguments: Any
    lm_call_id: str
    claimed: bool = False


@dataclass
class ChosenCalls:
    """Tool calls chosen by LM replies in one run, so ``execute`` can be linked to the LM call and its id."""

    calls: list[ChosenCall] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, call: ChosenCall) -> None:
        """Remember a chosen call; only the latest 256 are kept, so a long agent run does not grow without bound."""
        with self.lock:
            self.calls.append(call)
            del self.calls[:-256]  # bounded: a long agent keeps only its recent choices

    def peek(self, name: str, arguments: Any) -> str | None:
        """The id of the first unclaimed chosen call with this name and these arguments (not claimed)."""
        with self.lock:
            for call in self.calls:
                if not call.claimed and call.name == name and _same(call.arguments, arguments):
                    return call.tool_call_id
        return None

    def claim(self, tool_call_id: str | None, name: str, arguments: Any) -> ChosenCall | None:
        """The first unclaimed chosen call with this id (or, without an id, this name and these arguments)."""
        with self.lock:
            for call in self.calls:
                if call.claimed:
                    continue
                if tool_call_id is not None and call.tool_call_id == tool_call_id:
                    call.claimed = True
                    return call
                if tool_call_id is None and call.name == name and _same(call.arguments, arguments):
                    call.claimed = True
                    return call
        return None


def _same(chosen: Any, given: Any) -> bool:
    """The LM's arguments equal the call's; never raises (a DataFrame argument compares elementwise)."""
    try:
        return bool(chosen == given)
    except Exception:
        return False


def record_chosen(run: Any, lm_call_id: str, outputs: Any) -> None:
    """Remember the tool calls in an LM call's outputs (a list of dicts with ``tool_calls``)."""
    if not isinstance(outputs, list):
        return
    chosen: ChosenCalls | None = getattr(run, "chosen_tools", None)
    if chosen is None:
        return
    for output in outputs:
        calls = output.get("tool_calls") if isinstance(output, dict) else None
        for call in calls or ():
            parsed = _provider_call(call)
            if parsed is not None:
                chosen.add(ChosenCall(parsed[0], parsed[1], parsed[2], lm_call_id))


def _provider_call(call: Any) -> tuple[str | None, str, Any] | None:
    """(id, name, parsed arguments) of an OpenAI-shaped tool call (dict or object)."""
    get = call.get if isinstance(call, dict) else lambda key, default=None: getattr(call, key, default)
    function = get("function")
    if function is None:
        return None
    fget = function.get if isinstance(function, dict) else lambda key, default=None: getattr(function, key, default)
    name, arguments = fget("name"), fget("arguments")
    if not isinstance(name, str):
        return None
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):  # arguments that are not JSON stay text
            arguments = json.loads(arguments)
    call_id = get("id")
    return (call_id if isinstance(call_id, str) and call_id else None), name, arguments


def tool_field(signature: Any, chosen: frozenset[str]) -> str | None:
    """The chosen output field of type ``dspy.ToolCalls`` (native function calling), if any."""
    if not chosen:
        return None
    from dspy.adapters.types.tool import ToolCalls

    for name, field_info in signature.output_fields.items():
        if name in chosen and field_info.annotation is ToolCalls:
            return str(name)
    return None


def replay_tool_calls(stream: LMCallStream, name: str, value: Any, chosen: ChosenCalls) -> None:
    """A cached ``dspy.ToolCalls`` value: each call's arguments as one token, linked like a streamed call."""
    for index, tool_call in enumerate(getattr(value, "tool_calls", None) or ()):
        tool_name, arguments = str(getattr(tool_call, "name", "")), getattr(tool_call, "args", None) or {}
        call_id = getattr(tool_call, "id", None) or chosen.peek(tool_name, arguments)
        extra: dict[str, Any] = {"tool_index": index, "tool_name": tool_name}
        if call_id:
            extra["tool_call_id"] = call_id
        field_stream = FieldStream(stream, name, "cache", extra=extra)
        field_stream.held = json.dumps(arguments, ensure_ascii=False, default=repr)
        field_stream.finish(CACHED)


__all__ = ["ChosenCall", "ChosenCalls", "record_chosen", "replay_tool_calls", "tool_field"]
