"""Cancellation inside an execution run: the signal a run sets and the checks the LM stream reader makes.

``streamll.execution()`` (in :mod:`streamll.tracing`) sets :data:`cancel_signal` for the
run's context; the stream reader asks :func:`cancel_flag` once per request.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from contextvars import ContextVar

EXECUTION_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}\Z")
"""Ids a caller may choose: usable as a Redis key part, a NATS subject token and in a URL path.

Use it with ``.match``: it is anchored at the end with ``\\Z``, so a trailing newline does not pass.
"""

cancel_signal: ContextVar[threading.Event | None] = ContextVar("streamll_cancel", default=None)
"""Set while an execution run is active: the event its cancellation sets."""


class ExecutionCancelled(BaseException):
    """Raised inside a run whose cancellation was requested, where the LM stream is read.

    A ``BaseException`` (like ``asyncio.CancelledError``), so DSPy's retries and
    adapter fallbacks, which catch ``Exception``, do not start another LM call;
    ``with run:`` swallows it and the run ends normally, marked ``cancelled``.
    """


def cancel_requested() -> bool:
    """True when the current execution's run was asked to stop (checked by the LM stream reader)."""
    signal = cancel_signal.get()
    return signal is not None and signal.is_set()


def cancel_flag() -> Callable[[], bool] | None:
    """The current run's "asked to stop?" check, or ``None`` outside a run.

    The LM stream reader takes it once per request, so checking after each
    chunk costs one call of ``threading.Event.is_set``.
    """
    signal = cancel_signal.get()
    return signal.is_set if signal is not None else None


def raise_if_cancelled() -> None:
    """Raise :class:`ExecutionCancelled` when the current run was asked to stop (the LM stream reader's hook)."""
    if cancel_requested():
        raise ExecutionCancelled("the execution was cancelled")


__all__ = [
    "EXECUTION_ID_PATTERN",
    "ExecutionCancelled",
    "cancel_flag",
    "cancel_requested",
    "cancel_signal",
    "raise_if_cancelled",
]
