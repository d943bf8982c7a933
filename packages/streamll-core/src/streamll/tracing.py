"""``streamll.trace()`` and ``streamll.execution()``: spans for user code and runs with a known id.

Both take sinks as objects or URLs, so they sit above configuration (URL -> sink through
the plugins) and cancellation; the span and cancellation mechanics they use live in core.

A web handler creates a run with ``streamll.execution()``, returns ``run.execution_id`` to
the browser at once, and runs the module inside ``with run:`` in the background; the
browser reads ``/executions/<id>/events`` from the relay meanwhile (it waits for the first
event if it connects early). The run is a span (operation ``"execution"``): its start and
end / error events enclose everything the module emits, and its end event is the
execution's last.
"""

from __future__ import annotations

import logging
import threading
from contextvars import Token
from types import TracebackType
from typing import TYPE_CHECKING, Any

from streamll.cancellation import cancel_urls, watcher
from streamll.config import active_sinks, resolve_sinks
from streamll.core.context import Execution, current_execution
from streamll.core.events import new_event_id
from streamll.core.runs import EXECUTION_ID_PATTERN, ExecutionCancelled, cancel_signal
from streamll.core.spans import Span
from streamll.deprecation import deprecated

if TYPE_CHECKING:
    from streamll.sinks.base import BaseSink

logger = logging.getLogger("streamll")

_url_sinks: dict[str, BaseSink] = {}
_url_sinks_lock = threading.Lock()


def _trace_sinks(sinks: list[Any]) -> tuple[BaseSink, ...]:
    """Sink objects as given; each URL built once per process and reused by every later trace naming it."""
    if isinstance(sinks, (str, bytes)):
        resolve_sinks(sinks)  # raises the "a list, not a single string" ConfigurationError
    resolved: list[Any] = []
    for item in sinks:
        if isinstance(item, str):
            with _url_sinks_lock:
                if item not in _url_sinks:
                    (_url_sinks[item],), _ = resolve_sinks([item])
                item = _url_sinks[item]
        resolved.append(item)
    checked, _ = resolve_sinks(resolved)
    return checked


def trace(name: str, *, data: dict[str, Any] | None = None, sinks: list[Any] | None = None, **metadata: Any) -> Span:
    """A span for your own code: ``with streamll.trace("retrieve", user="u1") as ctx: ctx.emit("hit", data={...})``.

    Works with ``with`` and ``async with``; ``sinks`` (objects or URLs) apply
    when the trace starts a new execution. A sink built from a URL here is
    shared by every trace naming that URL and drained at interpreter exit.
    Keyword ``metadata`` goes into the ``tags`` of every event emitted inside
    the trace (modules, LM calls, tokens, nested traces) and into the ``data``
    of the trace's own start / end / error and ``ctx.emit`` events.
    """
    if data is not None and not isinstance(data, dict):
        raise TypeError(f"trace data must be a dict, not {type(data).__name__}")
    if "module_name" in metadata:
        deprecated(
            "trace(name, module_name=...) (0.1: the events' module_name)",
            f"streamll.trace({metadata['module_name']!r}): a trace's name is its events' module_name; "
            "module_name= is kept as metadata",
        )
    resolved = _trace_sinks(sinks) if sinks is not None else None
    return Span("trace", name, sinks=resolved, data=data, metadata=metadata)


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
        """Fix the run's id (given or new) and resolve its sinks; nothing is emitted until ``with``."""
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
        """Start the execution: its start event, the cancel signal, and listening for cancellation."""
        if self._entered:
            raise RuntimeError("an ExecutionRun can be entered once; create another with streamll.execution()")
        self._entered = True
        execution = Execution(execution_id=self.execution_id, sinks=self._sinks)
        self._tokens.append(current_execution.set(execution))
        self._tokens.append(cancel_signal.set(self._cancel))
        self._span = Span("execution", self.name, sinks=self._sinks, data=self._data).open()
        self._watch_cancel()
        return self

    def _watch_cancel(self) -> None:
        """Listen for cancellation on the brokers of this run's sinks (scheduled, never awaited)."""
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
        """End the execution (marked ``cancelled`` if asked to stop); swallows its own ``ExecutionCancelled``."""
        swallowed = isinstance(exc, ExecutionCancelled) and self.cancelled
        if swallowed:
            exc = None
        try:
            if self._cancel_urls:
                watcher.unwatch(self._cancel_urls, self.execution_id)
            if self._span is not None:
                self._span.close(exc, {"cancelled": True} if self.cancelled else None)
        finally:
            for token in reversed(self._tokens):
                token.var.reset(token)
            self._tokens.clear()
        return swallowed

    async def __aenter__(self) -> ExecutionRun:
        """Same as ``__enter__``."""
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        """Same as ``__exit__``."""
        return self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        """The id and whether cancellation was requested."""
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


__all__ = ["ExecutionRun", "execution", "trace"]
