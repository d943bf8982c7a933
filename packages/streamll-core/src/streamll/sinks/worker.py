"""The background worker: one daemon thread running one asyncio loop for every sink.

Sinks hand events to bounded in-memory queues on the caller's thread; the
coroutines that batch and write them run here, so the user's program never
waits on a network.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

logger = logging.getLogger("streamll")

T = TypeVar("T")

EXIT_TIMEOUT_ENV = "STREAMLL_EXIT_TIMEOUT"
DEFAULT_EXIT_TIMEOUT = 10.0


class BackgroundWorker:
    """Owns the shared event loop thread; started on first use, drained at interpreter exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, starting the thread if needed."""
        loop = self._loop
        if loop is not None and self._thread is not None and self._thread.is_alive():
            return loop
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name="streamll-worker", daemon=True)
        thread.start()
        ready.wait()
        self._loop, self._thread = loop, thread

    def in_worker_thread(self) -> bool:
        """True when called from the worker thread itself (where blocking would deadlock)."""
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Schedule ``coro`` on the worker loop; returns a thread-safe future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call_soon(self, callback: Any, *args: Any) -> None:
        """Run ``callback(*args)`` on the worker loop as soon as possible."""
        self.loop.call_soon_threadsafe(callback, *args)


worker = BackgroundWorker()
"""The process-wide worker shared by all sinks."""


def exit_timeout() -> float:
    """Seconds interpreter exit waits for sinks to drain (``STREAMLL_EXIT_TIMEOUT``)."""
    try:
        return float(os.environ.get(EXIT_TIMEOUT_ENV, DEFAULT_EXIT_TIMEOUT))
    except ValueError:
        return DEFAULT_EXIT_TIMEOUT


def _drain_at_exit() -> None:
    from streamll.sinks.registry import stop_all_sinks

    stop_all_sinks(timeout=exit_timeout())


atexit.register(_drain_at_exit)

__all__ = ["BackgroundWorker", "exit_timeout", "worker"]
