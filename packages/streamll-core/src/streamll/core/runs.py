"""``streamll.execution()``: an execution whose id is known before the instrumented call starts.

A web handler creates the run, returns ``run.execution_id`` to the browser at
once, and runs the module inside ``with run:`` in the background; the browser
reads ``/executions/<id>/events`` from the relay meanwhile (it waits for the
first event if it connects early). The run is a span (operation
``"execution"``): its start and end / error events enclose everything the
module emits, and its end event is the execution's last.
"""

from __future__ import annotations

import logging
import re
import threading
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

from streamll.core.context import Execution, current_execution
from streamll.core.events import new_event_id
from streamll.core.spans import Span, _trace_sinks

EXECUTION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
"""Ids a caller may choose: usable as a Redis key part, a NATS subject token and in a URL path."""

logger = logging.getLogger("streamll")

current_run: ContextVar[ExecutionRun | None] = ContextVar("streamll_run", default=None)


class ExecutionCancelled(BaseException):
    """Raised inside a run whose cancellation was requested, where the LM stream is read.

    A ``BaseException`` (like ``asyncio.CancelledError``), so DSPy's retries and
    adapter fallbacks, which catch ``Exception``, do not start another LM call;
    ``with run:`` swallows it and the run ends normally, marked ``cancelled``.
    """


class ExecutionRun:
    """One execution started with :func:`execution`; ``execution_id`` is fixed from construction."""

    def __init__(
        self,
        execution_id: str | None = None,
        *,
        name: str = "execution",
        sinks: list[Any] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        if execution_id is None:
            execution_id = new_event_id()
        elif not isinstance(execution_id, str) or not EXECUTION_ID_PATTERN.match(execution_id):
            raise ValueError(f"execution_id must be 1-128 letters, digits, '_' or '-', got {execution_id!r}")
        self.execution_id: str = execution_id
        self.name = name
        self._sinks = _trace_sinks(sinks) if sinks is not None else None
        self._data = data
        self._span: Span | None = None
        self._tokens: list[Token[Any]] = []
        self._cancel = threading.Event()
        self._entered = False
        self._cancel_urls: list[str] = []

    @property
    def cancelled(self) -> bool:
        """True once cancellation was requested (by :meth:`cancel` or through the broker)."""
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Ask the instrumented call to stop reading the LM stream (it ends with finish_reason ``cancelled``)."""
        self._cancel.set()

    def __enter__(self) -> ExecutionRun:
        if self._entered:
            raise RuntimeError("an ExecutionRun can be entered once; create another with streamll.execution()")
        self._entered = True
        execution = Execution(execution_id=self.execution_id, sinks=self._sinks)
        self._tokens.append(current_execution.set(execution))
        self._tokens.append(current_run.set(self))
        self._span = Span("execution", self.name, sinks=self._sinks, data=self._data).open()
        self._watch_cancel()
        return self

    def _watch_cancel(self) -> None:
        """Listen for cancellation on the brokers of this run's sinks (scheduled, never awaited)."""
        from streamll.cancellation import cancel_urls, watcher
        from streamll.config import active_sinks

        try:
            sinks = self._sinks if self._sinks is not None else active_sinks()
            self._cancel_urls = cancel_urls(sinks)
            if self._cancel_urls:
                watcher.watch(self._cancel_urls, self.execution_id, self.cancel)
        except Exception as exc:  # never break the user's program
            logger.warning("streamll: cannot listen for cancellation of %s: %s", self.execution_id, exc)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        swallowed = isinstance(exc, ExecutionCancelled) and self.cancelled
        if swallowed:
            exc = None
        try:
            if self._cancel_urls:
                from streamll.cancellation import watcher

                watcher.unwatch(self._cancel_urls, self.execution_id)
            if self._span is not None:
                self._span.close(exc, {"cancelled": True} if self.cancelled else None)
        finally:
            for token in reversed(self._tokens):
                token.var.reset(token)
            self._tokens.clear()
        return swallowed

    async def __aenter__(self) -> ExecutionRun:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        return self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"<ExecutionRun {self.execution_id} cancelled={self.cancelled}>"


def execution(
    execution_id: str | None = None,
    *,
    name: str = "execution",
    sinks: list[Any] | None = None,
    data: dict[str, Any] | None = None,
) -> ExecutionRun:
    """An execution with a known id: ``with streamll.execution() as run: ...`` (``run.execution_id``).

    ``execution_id``: a caller-chosen id (letters, digits, ``_``, ``-``), or a
    new random one. ``sinks`` (objects or URLs) replace the configured sinks
    for this execution. ``data`` goes into its start event.
    """
    return ExecutionRun(execution_id, name=name, sinks=sinks, data=data)


def cancel_requested() -> bool:
    """True when the current execution's run was asked to stop (checked by the LM stream reader)."""
    run = current_run.get()
    return run is not None and run.cancelled


def raise_if_cancelled() -> None:
    """Raise :class:`ExecutionCancelled` when the current run was asked to stop (the LM stream reader's hook)."""
    if cancel_requested():
        raise ExecutionCancelled("the execution was cancelled")


__all__ = [
    "EXECUTION_ID_PATTERN",
    "ExecutionCancelled",
    "ExecutionRun",
    "cancel_requested",
    "current_run",
    "execution",
    "raise_if_cancelled",
]
