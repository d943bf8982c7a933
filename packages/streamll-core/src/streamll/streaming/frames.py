"""Frames: one per call of an instrumented module, carried in DSPy's own settings.

A frame lives in ``dspy.settings`` (key :data:`FRAME_KEY`) for the duration of
the call, so it follows DSPy wherever DSPy takes its settings: into
``dspy.Parallel`` / ``module.batch`` worker threads, ``asyncify`` and
``streamify``. Each frame holds the call's chosen stream fields (the value
``self._streamll_stream_fields`` reads and writes during the call), so
concurrent calls on one instance never see each other's choice.
"""

from __future__ import annotations

import contextlib
from contextvars import Token
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from dspy.dsp.utils.settings import thread_local_overrides

from streamll.core.context import Execution, context_tags, current_execution, current_span
from streamll.streaming.fields import ReplyRun

if TYPE_CHECKING:
    from streamll.streaming.native_tools import ChosenCalls

FRAME_KEY = "streamll_frame"
"""The ``dspy.settings`` key holding the innermost instrumented call's :class:`Frame`."""


class FrameRun(ReplyRun, Protocol):
    """The run a frame belongs to (:class:`~streamll.streaming.bridge.TokenRun`), as the modules under it see it.

    Declared here so frames do not depend on the run's own module, which builds on them.
    """

    execution: Execution
    chosen_tools: ChosenCalls

    def predictor_started(self, call: Any, adapter: Any, signature: Any) -> None:
        """A predictor call of this run is about to format its LM request."""

    def predictor_finished(self, call: Any, outputs: Any) -> None:
        """A predictor call of this run returned ``outputs``."""


@dataclass(eq=False)
class Frame:
    """One running call of an instrumented module."""

    module: Any
    fields: Any
    run: FrameRun
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


def hide_frames(exc: BaseException) -> None:
    """Drop the frames of streamll's DSPy wrappers from the tracebacks of ``exc`` and its chain.

    An exception raised inside DSPy passes through the thin wrappers of
    :mod:`streamll.streaming.hooks` and :mod:`~streamll.streaming.capture`;
    the user sees the traceback the plain program gives (plus the one frame of
    the instrumented ``__call__``).
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        with contextlib.suppress(Exception):  # a traceback that cannot be rebuilt stays as it is
            current.__traceback__ = _without_streaming_frames(current.__traceback__)
        pending.extend((current.__cause__, current.__context__))


def _without_streaming_frames(tb: TracebackType | None) -> TracebackType | None:
    entries = []
    while tb is not None:
        if not str(tb.tb_frame.f_globals.get("__name__", "")).startswith(_STREAMING):
            entries.append(tb)
        tb = tb.tb_next
    rebuilt: TracebackType | None = None
    for entry in reversed(entries):
        rebuilt = TracebackType(rebuilt, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return rebuilt


_STREAMING = "streamll.streaming."

__all__ = ["FRAME_KEY", "Frame", "FrameRun", "adopt", "current_frame", "frame_of", "hide_frames"]
