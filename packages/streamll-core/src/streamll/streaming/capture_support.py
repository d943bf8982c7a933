"""What the LM-call wrappers share: which call to stream, cancellation checks, contained parser failures.

Used by :mod:`~streamll.streaming.engine_capture` and
:mod:`~streamll.streaming.litellm_capture` (see :mod:`~streamll.streaming.capture`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from streamll.core.runs import ExecutionCancelled, cancel_flag
from streamll.streaming.bridge import LMSpan, current_lm_span

logger = logging.getLogger("streamll")


def wanted_span() -> LMSpan | None:
    """The current LM call's span when it streams a chosen field, else ``None`` (the wrapper stays out of the way)."""
    span = current_lm_span()
    return span if span is not None and span.wants_stream else None


def watch() -> Callable[[], bool] | None:
    """The current run's cancellation check for this request (``None`` outside ``streamll.execution()``).

    Taken once per request, so a chunk costs one ``Event.is_set`` call; raises
    :class:`ExecutionCancelled` when the run was already asked to stop, before
    the request is sent.
    """
    cancelled = cancel_flag()
    if cancelled is not None and cancelled():
        stop()
    return cancelled


def stop() -> None:
    """Stop reading the LM stream (the caller closes it): the run was asked to stop."""
    raise ExecutionCancelled("the execution was cancelled")


def safe(feed: Any, *args: Any) -> None:
    """Feed the parser; a streamll bug must never break the LM call."""
    try:
        feed(*args)
    except Exception:
        logger.exception("streamll: failed to process a stream chunk")


def check(cancelled: Callable[[], bool] | None) -> None:
    """Stop reading when the run was asked to stop (``cancelled`` from :func:`watch`)."""
    if cancelled is not None and cancelled():
        stop()


__all__ = ["check", "safe", "stop", "wanted_span", "watch"]
