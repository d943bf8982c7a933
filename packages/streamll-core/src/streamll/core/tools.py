"""Tool calls as events: ``tool_start``, then ``tool_end`` or ``tool_error``.

A :class:`ToolSpan` is one call of one tool. It knows nothing about DSPy (the
DSPy wrappers are in :mod:`streamll.streaming.tools`): it emits the events in
the current execution, makes its start event the parent of whatever the tool
itself emits, and keeps the result it reports bounded (:data:`RESULT_LIMIT`).
"""

from __future__ import annotations

import time
from contextvars import Token
from typing import Any

from streamll.core.context import Execution, current_span
from streamll.core.emitter import dispatch, make_event
from streamll.core.events import new_event_id
from streamll.core.spans import error_data

RESULT_LIMIT = 2000
"""Most characters of a tool's result text that ``tool_end`` carries (the rest is cut, ``result_truncated``)."""
OPERATION = "tool"
"""The ``operation`` of every tool event."""


def result_summary(value: Any, limit: int = RESULT_LIMIT) -> dict[str, Any]:
    """``result`` as text cut to ``limit`` characters and ``result_type``; when cut, ``result_truncated`` too.

    ``result_length`` (the whole text's length) is added when the text was cut.
    """
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:
        text = f"<unprintable {type(value).__name__}>"
    summary: dict[str, Any] = {"result": text[:limit], "result_type": type(value).__name__}
    if len(text) > limit:
        summary["result_truncated"] = True
        summary["result_length"] = len(text)
    return summary


def new_tool_call_id() -> str:
    """A tool call id for calls the LM gave none (ReAct's text-chosen tools): ``call_`` + a unique event id."""
    return f"call_{new_event_id()}"


class ToolSpan:
    """One tool call: :meth:`open` emits ``tool_start``, :meth:`close` ``tool_end`` or ``tool_error``.

    ``extra`` (``step``, ``lm_call_id``, ...) goes into the ``data`` of the
    start event; ``step`` also into the end / error event. ``status`` texts,
    when given, are emitted as ``status`` events beside the tool events.
    """

    def __init__(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        tool_call_id: str | None = None,
        extra: dict[str, Any] | None = None,
        execution: Execution | None = None,
        parent_id: str | None = None,
        tags: dict[str, Any] | None = None,
    ) -> None:
        """Describe the call (a missing ``tool_call_id`` gets a fresh one); nothing is emitted until :meth:`open`."""
        self.name = name
        self.arguments = arguments
        self.tool_call_id = tool_call_id or new_tool_call_id()
        self.extra = extra or {}
        self.execution = execution
        self.parent_id = parent_id
        self.tags = tags
        self.span_id: str | None = None
        self._started = 0.0
        self._token: Token[str | None] | None = None

    def _emit(self, event_type: str, data: dict[str, Any]) -> str:
        event, execution = make_event(
            event_type,
            data,
            execution=self.execution,
            parent_id=self.parent_id,
            tags=self.tags,
            module_name=self.name,
            operation=OPERATION,
        )
        self.execution = execution
        dispatch(event, execution)
        return event.event_id

    def _ids(self) -> dict[str, Any]:
        ids: dict[str, Any] = {"tool_call_id": self.tool_call_id, "tool_name": self.name}
        if "step" in self.extra:
            ids["step"] = self.extra["step"]
        return ids

    def open(self, status: str | None = None) -> ToolSpan:
        """Emit ``tool_start`` (and a ``status`` event) and make it the parent of events the tool emits."""
        data = {"tool_call_id": self.tool_call_id, "tool_name": self.name, "arguments": self.arguments, **self.extra}
        if status:
            data["status"] = status
        self.span_id = self._emit("tool_start", data)
        if status:
            self._emit("status", {"message": status, "stage": "tool_start", "tool_call_id": self.tool_call_id})
        self._token = current_span.set(self.span_id)
        self._started = time.perf_counter()
        return self

    def close(self, result: Any = None, error: BaseException | None = None, status: str | None = None) -> None:
        """Emit ``tool_end`` with the bounded result, or ``tool_error`` for ``error``."""
        if self._token is not None:
            current_span.reset(self._token)
            self._token = None
        data = {**self._ids(), "duration_ms": (time.perf_counter() - self._started) * 1000, "span_id": self.span_id}
        if error is not None:
            data.update(error_data(error))
            self._emit("tool_error", data)
            return
        data.update(result_summary(result))
        self._emit("tool_end", data)
        if status:
            self._emit("status", {"message": status, "stage": "tool_end", "tool_call_id": self.tool_call_id})


__all__ = ["OPERATION", "RESULT_LIMIT", "ToolSpan", "new_tool_call_id", "result_summary"]
