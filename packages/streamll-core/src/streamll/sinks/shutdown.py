"""Stopping with the program: drain the sinks on SIGTERM, and say plainly why a drain gave up.

SIGTERM is how ``docker stop``, Kubernetes and systemd stop a process. Its
default action ends the process at once, before ``atexit`` runs, so queued
events would be lost without a word. When the program has no SIGTERM handler
of its own, streamll installs one as its first sink starts: it drains every
sink (at most ``STREAMLL_EXIT_TIMEOUT`` seconds) and then ends the process by
SIGTERM, as it would have ended without streamll (same exit status, no
``finally`` blocks or ``atexit`` handlers run that would not have run).

A program with its own SIGTERM handler keeps it: streamll logs once how to
drain from it (``streamll.flush(timeout=...)``). ``STREAMLL_HANDLE_SIGTERM=0``
turns the handler off.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from streamll.sinks.worker import exit_timeout

if TYPE_CHECKING:
    from streamll.sinks.state import SinkState

logger = logging.getLogger("streamll")

HANDLE_SIGTERM_ENV = "STREAMLL_HANDLE_SIGTERM"
DRAIN_GRACE = 2.0
"""Seconds the handler waits past the exit timeout for the drain (a stop cancels hung writes after it)."""

_lock = threading.Lock()
_settled = False
"""True once streamll installed its handler, or found the program's own and said so."""
_sinks: tuple[Callable[[], object], Callable[[float], object]] | None = None
"""``(pending, drain)`` from :func:`install_sigterm_drain`: the registry owns the sinks, not this module."""


def _wanted() -> bool:
    return os.environ.get(HANDLE_SIGTERM_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def install_sigterm_drain(pending: Callable[[], object], drain: Callable[[float], object]) -> None:
    """Install the draining SIGTERM handler unless the program has its own (cheap after the first call).

    ``pending()`` says whether any sink runs and ``drain(timeout)`` stops them
    all; the caller (:mod:`streamll.sinks.registry`) passes them so this module
    does not depend on the registry. Only the main thread can install signal
    handlers: a sink first started on another thread leaves it to the next sink
    started on the main thread.
    """
    global _settled, _sinks
    _sinks = (pending, drain)
    if _settled or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        return
    with _lock:
        if _settled:
            return
        _settled = True
        if not _wanted():
            return
        current = signal.getsignal(signal.SIGTERM)
        if current is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _drain_then_terminate)
        elif callable(current) and current is not _drain_then_terminate:
            logger.warning(
                "streamll: this program handles SIGTERM itself, so streamll leaves that handler alone; "
                "a normal exit still drains the sinks, but if the handler ends the process another way "
                "(os._exit, a signal), call streamll.flush(timeout=5) in it first"
            )
        # SIG_IGN, or a handler installed outside Python: the program chose; nothing to do


def _drain_then_terminate(signum: int, frame: FrameType | None) -> None:
    """Drain every sink (bounded by the exit timeout), then end the process by the same signal."""
    timeout = exit_timeout()
    signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM during the drain ends the process at once
    try:
        if _sinks is not None and _sinks[0]():
            # On its own thread: this handler may have interrupted the main thread inside a sink's lock.
            drain = threading.Thread(target=_sinks[1], args=(timeout,), name="streamll-sigterm", daemon=True)
            drain.start()
            drain.join(timeout + DRAIN_GRACE)
    finally:
        os.kill(os.getpid(), signum)
        os._exit(128 + signum)  # not reached: the default action of the signal ends the process


def describe_connect_failure(sink: SinkState, exc: BaseException) -> str:
    """``connection refused to redis://host:6379/0 (...)``: why a sink that never connected gave up."""
    where = destination(sink)
    error = f"{type(exc).__name__}: {exc}"
    what = "connection refused" if refused(exc) or (where and probe_refused(where)) else "could not connect"
    return f"{what} to {where} ({error})" if where else f"{what} ({error})"


DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "nats": 4222, "tls": 4222, "kafka": 9092, "kafka+ssl": 9093}


def probe_refused(url: str, timeout: float = 0.5) -> bool:
    """True when the URL's first host:port refuses a TCP connection (for clients whose errors do not say)."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rsplit("@", 1)[-1].split(",")[0]
        address = urlsplit(f"//{host}")
        port = address.port or DEFAULT_PORTS.get(parts.scheme.lower())
        if not address.hostname or port is None:
            return False
        with socket.create_connection((address.hostname, port), timeout=timeout):
            return False
    except ConnectionRefusedError:
        return True
    except (OSError, ValueError):
        return False


def refused(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) is a refused TCP connection: nothing listens there."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError) or getattr(current, "errno", None) == errno.ECONNREFUSED:
            return True
        text = str(current).lower()
        if "refused" in text or f"error {errno.ECONNREFUSED} connecting" in text:
            return True
        current = current.__cause__ or current.__context__
    return False


def destination(sink: SinkState) -> str | None:
    """The sink's URL with credentials masked, when its options say (every first-party transport does)."""
    shown = getattr(getattr(sink, "options", None), "display_url", None)
    return shown if isinstance(shown, str) else None


__all__ = [
    "HANDLE_SIGTERM_ENV",
    "describe_connect_failure",
    "destination",
    "install_sigterm_drain",
    "probe_refused",
    "refused",
]
