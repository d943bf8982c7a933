"""Frames: one per call of an instrumented module, carried in DSPy's own settings.

A frame lives in ``dspy.settings`` (key :data:`FRAME_KEY`) for the duration of
the call, so it follows DSPy wherever DSPy takes its settings: into
``dspy.Parallel`` / ``module.batch`` worker threads, ``asyncify`` and
``streamify``. Each frame holds the call's chosen stream fields (the value
``self._streamll_stream_fields`` reads and writes during the call), so
concurrent calls on one instance never see each other's choice.
"""

from __future__ import annotations

from contextvars import Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dspy.dsp.utils.settings import thread_local_overrides

from streamll.core.context import context_tags, current_execution, current_span

if TYPE_CHECKING:
    from streamll.streaming.bridge import TokenRun

FRAME_KEY = "streamll_frame"
"""The ``dspy.settings`` key holding the innermost instrumented call's :class:`Frame`."""


@dataclass(eq=False)
class Frame:
    """One running call of an instrumented module."""

    module: Any
    fields: Any
    run: TokenRun
    parent: Frame | None
    span_id: str | None = None
    tags: dict[str, Any] = field(default_factory=dict)


def current_frame() -> Frame | None:
    """The innermost instrumented call running here (in this thread, task or DSPy worker)."""
    frame = thread_local_overrides.get().get(FRAME_KEY)  # frames only ever live in dspy.context overrides
    return frame if isinstance(frame, Frame) else None


def frame_of(module: Any) -> Frame | None:
    """The innermost running call of ``module`` visible here, if any."""
    frame = current_frame()
    while frame is not None:
        if frame.module is module:
            return frame
        frame = frame.parent
    return None


def adopt(frame: Frame) -> list[Token[Any]]:
    """Make streamll's context that of ``frame`` in a thread DSPy started (no-op where it already is)."""
    if current_execution.get() is frame.run.execution:
        return []
    return [
        current_execution.set(frame.run.execution),
        current_span.set(frame.span_id),
        context_tags.set(frame.tags),
    ]


__all__ = ["FRAME_KEY", "Frame", "adopt", "current_frame", "frame_of"]
