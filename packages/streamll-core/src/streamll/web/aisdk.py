"""streamll events as the AI SDK's UI message stream (``ai`` npm package, protocol header ``v1``).

One execution becomes one assistant message: ``start``; per LM call a step
(``start-step`` / ``finish-step``); the reasoning field's tokens as
``reasoning-start`` / ``-delta`` / ``-end`` parts and every other chosen
field's as ``text-*`` parts (one part per field and LM call); custom events
as ``data-<event_type>`` parts; tool calls as dynamic tool parts (argument
tokens of a native tool call, and a ReAct step's ``next_tool_args`` tokens, as
``tool-input-start`` / ``tool-input-delta``, then ``tool-input-available``;
``tool_end`` / ``tool_error`` as ``tool-output-available`` /
``tool-output-error``); at the end ``finish`` with the finish reason and,
in ``messageMetadata``, the execution id and the summed token usage. The
stream ends with ``[DONE]``.
"""

from __future__ import annotations

import json
from typing import Any

from streamll.executions import StoredEvent

HEADER = ("x-vercel-ai-ui-message-stream", "v1")
DONE = "[DONE]"
REASONING_FIELDS = frozenset({"reasoning"})
REACT_ARGS_FIELD, REACT_NAME_FIELD = "next_tool_args", "next_tool_name"
"""ReAct's step fields: a step's ``next_tool_args`` tokens are its tool call's input, as they stream."""
FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content-filter",
    "tool_calls": "tool-calls",
    "error": "error",
    "cancelled": "other",
}
"""streamll / OpenAI finish reasons to the AI SDK's names; anything else is ``other``."""


class UIMessageStream:
    """Turns one execution's events, in order, into UI message chunks (one instance per connection)."""

    def __init__(self, execution_id: str, reasoning_fields: frozenset[str] = REASONING_FIELDS) -> None:
        """A fresh stream for ``execution_id``; fields in ``reasoning_fields`` become reasoning parts, the rest text."""
        self.execution_id = execution_id
        self.reasoning_fields = reasoning_fields
        self._started = False
        self._step_open = False
        self._open: dict[str, str] = {}
        """Open part id -> its kind (``text`` / ``reasoning``)."""
        self._usage: dict[str, int] = {}
        self._finish_reason: str | None = None
        self._tool_inputs: dict[str, list[str]] = {}
        """Argument text so far of each native tool call whose input is streaming."""
        self._tools_available: dict[str, str] = {}
        """Tool calls whose ``tool-input-available`` was sent, with the tool name it gave."""
        self._react_names: dict[str, str] = {}
        """Text of ``next_tool_name`` so far, per ReAct step's LM call (``parent_id``)."""

    def chunks(self, event: StoredEvent) -> list[dict[str, Any]]:
        """The chunks ``event`` adds (possibly none)."""
        out: list[dict[str, Any]] = []
        if not self._started:
            self._started = True
            out.append({"type": "start", "messageId": self.execution_id})
        fields = event.fields
        raw = fields.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        operation = fields.get("operation")
        kind = event.event_type
        if kind == "token" and isinstance(data.get("tool_call_id"), str):
            out += self._tool_input_delta(data)
        elif kind == "token" and "step" in data and data.get("field") == REACT_ARGS_FIELD:
            out += self._react_input_delta(fields, data)
        elif kind == "token":
            out += self._token(fields, data)
        elif kind == "tool_start":
            out += self._tool_started(data)
        elif kind in ("tool_end", "tool_error"):
            out.append(self._tool_finished(data, kind))
        elif operation == "lm" and kind == "start":
            out += self._close_step()
            out.append({"type": "start-step"})
            self._step_open = True
        elif operation == "lm" and kind in ("end", "error"):
            self._add_usage(data.get("usage"))
            if data.get("finish_reason"):
                self._finish_reason = str(data["finish_reason"])
            out += self._close_step()
        elif operation == "tool" and kind == "start":
            out.append(self._tool_input(fields, data))
        elif operation == "tool" and kind in ("end", "error"):
            out += self._tool_output(fields, data, kind)
        elif kind not in ("start", "end", "error"):
            out.append({"type": f"data-{kind}", "id": fields.get("event_id"), "data": data})
        if event.closes_execution:
            out += self._finish(kind, data)
        return out

    def _token(self, fields: dict[str, Any], data: dict[str, Any]) -> list[dict[str, Any]]:
        self._react_name(fields, data)
        field = str(data.get("field") or "")
        part_kind = "reasoning" if field in self.reasoning_fields else "text"
        part_id = f"{field}:{fields.get('parent_id') or ''}"
        out: list[dict[str, Any]] = []
        if not self._step_open:
            out.append({"type": "start-step"})
            self._step_open = True
        if part_id not in self._open:
            self._open[part_id] = part_kind
            out.append({"type": f"{part_kind}-start", "id": part_id})
        token = data.get("token")
        if isinstance(token, str) and token:
            out.append({"type": f"{part_kind}-delta", "id": part_id, "delta": token})
        if data.get("finish_reason") is not None:
            out.append({"type": f"{part_kind}-end", "id": part_id})
            del self._open[part_id]
        return out

    def _tool_input_delta(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """A chunk of a native tool call's arguments: the part starts, grows, and is available at its last chunk."""
        call_id = str(data["tool_call_id"])
        name = str(data.get("tool_name") or "tool")
        out: list[dict[str, Any]] = []
        if call_id in self._tools_available:
            return out
        if call_id not in self._tool_inputs:
            self._tool_inputs[call_id] = []
            out.append({"type": "tool-input-start", "toolCallId": call_id, "toolName": name, "dynamic": True})
        token = data.get("token")
        if isinstance(token, str) and token:
            self._tool_inputs[call_id].append(token)
            out.append({"type": "tool-input-delta", "toolCallId": call_id, "inputTextDelta": token})
        if data.get("finish_reason") is not None:
            text = "".join(self._tool_inputs.pop(call_id))
            try:
                arguments: Any = json.loads(text) if text else {}
            except ValueError:
                arguments = text
            out.append(self._available(call_id, name, arguments))
        return out

    def _react_input_delta(self, fields: dict[str, Any], data: dict[str, Any]) -> list[dict[str, Any]]:
        """A ReAct step's ``next_tool_args`` token: the input of the tool call ``call_<parent_id>`` as it streams."""
        parent = str(fields.get("parent_id") or "")
        name = self._react_names.get(parent, "").strip() or "tool"
        return self._tool_input_delta({**data, "tool_call_id": f"call_{parent}", "tool_name": name})

    def _react_name(self, fields: dict[str, Any], data: dict[str, Any]) -> None:
        if "step" in data and data.get("field") == REACT_NAME_FIELD and isinstance(data.get("token"), str):
            parent = str(fields.get("parent_id") or "")
            self._react_names[parent] = self._react_names.get(parent, "") + data["token"]

    def _available(self, call_id: str, name: str, arguments: Any) -> dict[str, Any]:
        self._tools_available[call_id] = name if isinstance(arguments, dict) else ""  # text input: tool_start redoes it
        return {"type": "tool-input-available", "toolCallId": call_id, "toolName": name, "input": arguments,
                "dynamic": True}  # fmt: skip

    def _tool_started(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The tool runs: its input is available (again, when the streamed one lacked the name or did not parse)."""
        call_id, name = str(data.get("tool_call_id") or ""), str(data.get("tool_name") or "tool")
        if not call_id or self._tools_available.get(call_id) == name:
            return []
        self._tool_inputs.pop(call_id, None)
        return [self._available(call_id, name, data.get("arguments", {}))]

    def _tool_finished(self, data: dict[str, Any], kind: str) -> dict[str, Any]:
        call_id = str(data.get("tool_call_id") or "")
        if kind == "tool_error":
            text = f"{data.get('error_type')}: {data.get('error_message')}"
            return {"type": "tool-output-error", "toolCallId": call_id, "errorText": text, "dynamic": True}
        return {"type": "tool-output-available", "toolCallId": call_id, "output": data.get("result"), "dynamic": True}

    def _tool_input(self, fields: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "tool-input-available",
            "toolCallId": str(fields.get("event_id")),
            "toolName": str(fields.get("module_name") or "tool"),
            "input": data.get("inputs", data),
            "dynamic": True,
        }

    def _tool_output(self, fields: dict[str, Any], data: dict[str, Any], kind: str) -> list[dict[str, Any]]:
        call_id = str(data.get("span_id") or fields.get("parent_id") or "")
        if kind == "error":
            return [{"type": "tool-output-error", "toolCallId": call_id, "errorText": str(data.get("error_message"))}]
        return [{"type": "tool-output-available", "toolCallId": call_id, "output": data.get("outputs")}]

    def _close_parts(self) -> list[dict[str, Any]]:
        out = [{"type": f"{kind}-end", "id": part_id} for part_id, kind in self._open.items()]
        self._open.clear()
        return out

    def _close_step(self) -> list[dict[str, Any]]:
        out = self._close_parts()
        if self._step_open:
            out.append({"type": "finish-step"})
            self._step_open = False
        return out

    def _add_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            for key, value in usage.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    self._usage[key] = self._usage.get(key, 0) + value

    def _finish(self, kind: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        out = self._close_step()
        reason = self._finish_reason or "stop"
        if kind == "error":
            reason = "error"
            out.append({"type": "error", "errorText": f"{data.get('error_type')}: {data.get('error_message')}"})
        metadata: dict[str, Any] = {"executionId": self.execution_id, "finishReason": reason}
        if self._usage:
            metadata["usage"] = self._usage
        out.append({"type": "finish", "finishReason": FINISH_REASONS.get(reason, "other"), "messageMetadata": metadata})
        return out


__all__ = ["DONE", "FINISH_REASONS", "HEADER", "REASONING_FIELDS", "UIMessageStream"]
