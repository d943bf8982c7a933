"""``dspy.Refine`` / ``dspy.BestOfN`` attempts: numbered, and the one returned is marked.

Both modules run a deep copy of their module per attempt. While one runs
inside an instrumented call, streamll wraps (only for that time, see
:mod:`~streamll.streaming.patches`):

* ``BaseModule.deepcopy``: the copy's predictors keep the names of the ones they
  copy (:mod:`~streamll.streaming.names`); a copy of the running Refine's /
  BestOfN's module starts the next attempt, and its predictors carry its number;
* ``Refine.forward`` / ``BestOfN.forward``: a ``module`` span around the call
  whose ``end`` event says how many attempts ran (``data["attempts"]``) and which
  one's prediction was returned (``data["chosen_attempt"]``), found from the
  trace DSPy extends with the chosen attempt's steps.

Token and LM events of an attempt carry ``data["attempt"]`` (1, 2, ...).
"""

from __future__ import annotations

import functools
import logging
from contextvars import ContextVar
from typing import Any

from streamll.core.spans import Span
from streamll.streaming.frames import Frame, current_frame
from streamll.streaming.names import attempt_of, module_path, record_copy
from streamll.streaming.patches import register

logger = logging.getLogger("streamll")


class Attempts:
    """One running call of a Refine / BestOfN: its module and how many attempts started."""

    __slots__ = ("count", "module")

    def __init__(self, module: Any) -> None:
        self.module = module
        self.count = 0


current_attempts: ContextVar[Attempts | None] = ContextVar("streamll_attempts", default=None)


def _copied(original: Any, copy: Any) -> None:
    if current_frame() is None:
        return
    attempts = current_attempts.get()
    try:
        if attempts is not None and original is attempts.module:
            attempts.count += 1
            record_copy(original, copy, attempts, attempts.count)
        else:
            record_copy(original, copy)
    except Exception:
        logger.exception("streamll: could not follow a module copy")


def _wrap_deepcopy(cls: type) -> None:
    deepcopy = cls.__dict__.get("deepcopy")
    if deepcopy is None:
        return

    @functools.wraps(deepcopy)
    def wrapper(self: Any) -> Any:
        copy = deepcopy(self)
        _copied(self, copy)
        return copy

    register(cls, "deepcopy", wrapper)


def _open(module: Any, frame: Frame) -> tuple[Span | None, Attempts, Any, int | None]:
    """The span of one Refine / BestOfN call in ``frame`` (None if it cannot be opened) and its attempt counter."""
    attempts = Attempts(getattr(module, "module", None))
    token = current_attempts.set(attempts)
    span = None
    try:
        path = module_path(frame.module, module)
        owner = type(frame.module).__name__
        name = f"{owner}.{path}" if path else f"{owner}.{type(module).__name__}"
        span = Span("module", name, method_name="forward").open()
    except Exception:
        logger.exception("streamll: could not open the span of %s", type(module).__name__)
    return span, attempts, token, _trace_length()


def _trace_length() -> int | None:
    from dspy.dsp.utils.settings import settings

    trace = settings.trace
    return len(trace) if isinstance(trace, list) else None


def _chosen(attempts: Attempts, start: int | None) -> int | None:
    """The attempt whose steps DSPy added to the trace (the returned prediction's)."""
    from dspy.dsp.utils.settings import settings

    trace = settings.trace
    if start is None or not isinstance(trace, list):
        return None
    for entry in trace[start:]:
        found = attempt_of(entry[0]) if isinstance(entry, tuple) and entry else None
        if found is not None and found[0] is attempts:
            return found[1]
    return None


def _close(opened: tuple[Span | None, Attempts, Any, int | None], error: BaseException | None) -> None:
    span, attempts, token, start = opened
    current_attempts.reset(token)
    if span is None:
        return
    try:
        data: dict[str, Any] = {"attempts": attempts.count}
        if error is None:
            data["chosen_attempt"] = _chosen(attempts, start)
        span.close(error, data)
    except Exception:
        logger.exception("streamll: could not close the span of an attempts module")


def _wrap_forward(cls: type) -> None:
    forward = cls.__dict__.get("forward")
    if forward is None:
        return

    @functools.wraps(forward)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        frame = current_frame()
        if frame is None:
            return forward(self, *args, **kwargs)
        opened = _open(self, frame)
        try:
            result = forward(self, *args, **kwargs)
        except BaseException as exc:
            _close(opened, exc)
            raise
        _close(opened, None)
        return result

    register(cls, "forward", wrapper)


def prepare_attempts() -> None:
    """Build the wrappers of ``BaseModule.deepcopy``, ``Refine.forward`` and ``BestOfN.forward``."""
    from dspy.primitives.base_module import BaseModule

    _wrap_deepcopy(BaseModule)
    for path, name in (("dspy.predict.refine", "Refine"), ("dspy.predict.best_of_n", "BestOfN")):
        try:
            module = __import__(path, fromlist=[name])
        except ImportError:
            continue
        cls = getattr(module, name, None)
        if isinstance(cls, type):
            _wrap_forward(cls)


__all__ = ["prepare_attempts"]
