"""Spans: a start event, the events inside it, and an end or error event."""

from __future__ import annotations

import time
from contextvars import Token
from types import TracebackType
from typing import TYPE_CHECKING, Any

from streamll.core.context import Execution, context_tags, current_execution, current_span
from streamll.core.emitter import dispatch, make_event
from streamll.core.events import Event
from streamll.core.runs import ExecutionCancelled

if TYPE_CHECKING:
    from streamll.sinks.base import BaseSink


def error_data(exc: BaseException) -> dict[str, Any]:
    """What an error event says about an exception."""
    return {"error_type": type(exc).__name__, "error_message": str(exc)}


class Span:
    """A timed operation: emits ``start`` on enter and ``end`` (or ``error``) on exit.

    Opens a new execution when none is active (with ``sinks`` if given);
    inside, events get this span's start ``event_id`` as ``parent_id``.
    ``metadata`` is added to the ``tags`` of every event inside the span and to
    the ``data`` of its own start / end / error and :meth:`emit` events.
    Exceptions are never swallowed.
    """

    def __init__(
        self,
        operation: str,
        name: str | None,
        *,
        method_name: str | None = None,
        sinks: tuple[BaseSink, ...] | None = None,
        data: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """A closed span; :meth:`open` (or ``with``) emits its start event."""
        self.operation = operation
        self.name = name
        self.method_name = method_name
        self._sinks = sinks
        self.metadata = dict(metadata) if metadata else {}
        self._start_data = {**self.metadata, **data} if self.metadata and data else (data or self.metadata or None)
        self.execution: Execution | None = None
        self.span_id: str | None = None
        self._started = 0.0
        self._tokens: list[Token[Any]] = []

    def open(self) -> Span:
        """Emit the start event and make this span current."""
        execution = current_execution.get()
        if execution is None:
            execution = Execution(sinks=self._sinks)
            self._tokens.append(current_execution.set(execution))
        self.execution = execution
        if self.metadata:
            self._tokens.append(context_tags.set({**context_tags.get(), **self.metadata}))
        try:
            start, _ = make_event(
                "start",
                self._start_data,
                execution=execution,
                module_name=self.name,
                method_name=self.method_name,
                operation=self.operation,
            )
        except BaseException:  # e.g. data that is not a dict: leave the context as it was found
            for token in reversed(self._tokens):
                token.var.reset(token)
            self._tokens.clear()
            raise
        self.span_id = start.event_id
        self._tokens.append(current_span.set(start.event_id))
        self._started = time.perf_counter()
        dispatch(start, execution)
        return self

    def emit(self, event_type: str, data: dict[str, Any] | None = None, **fields: Any) -> Event:
        """Emit a custom event inside this span."""
        fields.setdefault("module_name", self.name)
        fields.setdefault("operation", self.operation)
        if self.metadata:
            data = {**self.metadata, **(data or {})}
        event, execution = make_event(event_type, data, execution=self.execution, parent_id=self.span_id, **fields)
        dispatch(event, execution)
        return event

    def close(self, error: BaseException | None = None, data: dict[str, Any] | None = None) -> None:
        """Emit the end (or error) event and restore the enclosing context.

        A span left by :class:`ExecutionCancelled` ends normally, marked ``cancelled``: stopping a run
        on request is not a failure of the code inside it.
        """
        elapsed_ms = (time.perf_counter() - self._started) * 1000
        payload = {**self.metadata, **(data or {}), "span_id": self.span_id, "duration_ms": elapsed_ms}
        if isinstance(error, ExecutionCancelled):
            payload["cancelled"] = True
            error = None
        if error is not None:
            payload.update(error_data(error))
        for token in reversed(self._tokens):
            token.var.reset(token)
        self._tokens.clear()
        # the enclosing context's ids plus this span's metadata (set_context inside the span does not leak out)
        tags = {**context_tags.get(), **self.metadata} if self.metadata else None
        event, execution = make_event(
            "error" if error is not None else "end",
            payload,
            execution=self.execution,
            module_name=self.name,
            method_name=self.method_name,
            operation=self.operation,
            tags=tags,
        )
        dispatch(event, execution)

    def __enter__(self) -> Span:
        """Open the span."""
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the span: an end event, or an error event for ``exc``."""
        self.close(exc)

    async def __aenter__(self) -> Span:
        """Open the span."""
        return self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the span: an end event, or an error event for ``exc``."""
        self.close(exc)


__all__ = ["Span", "error_data"]
