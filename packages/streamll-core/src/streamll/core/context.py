"""Execution context: which execution, span and user ids the current code runs under.

Everything lives in ``contextvars``, so threads and asyncio tasks each keep
their own; a worker thread started by streamll runs in a copy of the caller's
context.
"""

from __future__ import annotations

import itertools
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamll.core.events import new_event_id

if TYPE_CHECKING:
    from streamll.sinks.base import BaseSink


@dataclass
class Execution:
    """One top-level instrumented call (or trace): the events it emits share its id."""

    execution_id: str = field(default_factory=new_event_id)
    sinks: tuple[BaseSink, ...] | None = None
    """Sinks chosen for this execution (``@instrument(sinks=...)``); ``None`` means the configured ones."""
    _sequence: itertools.count = field(default_factory=itertools.count, repr=False)

    def next_sequence(self) -> int:
        """The next sequence number; ``next()`` on ``itertools.count`` is atomic in CPython."""
        return next(self._sequence)


current_execution: ContextVar[Execution | None] = ContextVar("streamll_execution", default=None)
current_span: ContextVar[str | None] = ContextVar("streamll_span", default=None)
"""``event_id`` of the start event of the innermost open span; children use it as ``parent_id``."""
context_tags: ContextVar[dict[str, Any]] = ContextVar("streamll_tags", default={})  # noqa: B039 - never mutated


def set_context(**ids: Any) -> None:
    """Attach ids (``user_id=..., request_id=...``) to every later event in this context.

    Values are merged into the event's ``tags``; a value of ``None`` removes a key.
    The change is local to the current thread or asyncio task.
    """
    merged = {**context_tags.get(), **ids}
    context_tags.set({key: value for key, value in merged.items() if value is not None})


def get_context() -> dict[str, Any]:
    """The ids set with :func:`set_context` in this context."""
    return dict(context_tags.get())


__all__ = ["Execution", "context_tags", "current_execution", "current_span", "get_context", "set_context"]
