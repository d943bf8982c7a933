"""Every running sink in the process, so ``flush()``, SIGTERM and interpreter exit can reach them.

Dependencies point one way: this module uses :mod:`streamll.sinks.worker` and
:mod:`streamll.sinks.shutdown`, and registers the exit drain and the fork reset
itself; neither of those modules imports it. Sinks register themselves
(:class:`~streamll.sinks.base.BaseSink` imports this module); it knows them
only as :class:`RunningSink`, so it does not import them back, not even for
type checking.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from typing import Protocol

from streamll.sinks.shutdown import install_sigterm_drain
from streamll.sinks.stats import SinkStats
from streamll.sinks.worker import exit_timeout


class RunningSink(Protocol):
    """A started sink as this registry sees it (:class:`~streamll.sinks.base.BaseSink`, which registers itself)."""

    name: str

    @property
    def stats(self) -> SinkStats:
        """The sink's delivery counters."""

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything handed to the sink is delivered; False on timeout."""

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Deliver what is buffered, then close; False when events were left undelivered."""

    def _reset_after_fork(self) -> None:
        """Forget the parent's buffer, connection and worker in a forked child."""


_lock = threading.Lock()
_running: weakref.WeakSet[RunningSink] = weakref.WeakSet()


def track(sink: RunningSink) -> None:
    """Remember a started sink (and make sure SIGTERM drains it: see :mod:`streamll.sinks.shutdown`)."""
    with _lock:
        _running.add(sink)
    install_sigterm_drain(running_sinks, stop_all_sinks)


def untrack(sink: RunningSink) -> None:
    """Forget a stopped sink."""
    with _lock:
        _running.discard(sink)


def running_sinks() -> list[RunningSink]:
    """Sinks started and not yet stopped."""
    with _lock:
        return list(_running)


def reset_after_fork() -> None:
    """In a forked child: the parent's sinks lost their worker; reset them so the next event restarts them."""
    global _lock
    _lock = threading.Lock()
    sinks = list(_running)
    _running.clear()
    for sink in sinks:
        sink._reset_after_fork()


def flush_all(timeout: float | None = None) -> bool:
    """Wait until every running sink has delivered what it was given; False on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    ok = True
    for sink in running_sinks():
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        ok = sink.flush(remaining) and ok
    return ok


def stop_all_sinks(timeout: float | None = None) -> bool:
    """Drain and stop every running sink, sharing one deadline."""
    deadline = None if timeout is None else time.monotonic() + timeout
    ok = True
    for sink in running_sinks():
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        ok = sink.stop(remaining) and ok
    return ok


def _drain_at_exit() -> None:
    stop_all_sinks(timeout=exit_timeout())


atexit.register(_drain_at_exit)
if hasattr(os, "register_at_fork"):
    # Registered after the worker's hook (this module imports the worker), so it runs after it, as before.
    os.register_at_fork(after_in_child=reset_after_fork)

__all__ = ["RunningSink", "flush_all", "reset_after_fork", "running_sinks", "stop_all_sinks", "track", "untrack"]
