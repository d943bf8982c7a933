"""The background worker: one daemon thread running one asyncio loop for every sink.

Sinks hand events to bounded in-memory queues on the caller's thread; the
coroutines that batch and write them run here, so the user's program never
waits on a network.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

logger = logging.getLogger("streamll")

T = TypeVar("T")

EXIT_TIMEOUT_ENV = "STREAMLL_EXIT_TIMEOUT"
DEFAULT_EXIT_TIMEOUT = 10.0


_Job = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class ExitSafeExecutor(ThreadPoolExecutor):
    """The worker loop's default executor: ``asyncio.to_thread``, ``handle_event`` batches, DNS lookups.

    ``concurrent.futures`` refuses new work in every ``ThreadPoolExecutor`` once
    the interpreter starts exiting, before ``atexit`` handlers run; the exit
    drain needs exactly that work (a ``handle_event`` sink's last batches).
    These daemon threads are not registered with that hook, so they keep
    running until the drain is done. Only ``submit`` and ``shutdown`` are used.
    """

    def __init__(self, max_workers: int | None = None, thread_name_prefix: str = "streamll-io") -> None:
        """No thread starts here: :meth:`submit` starts daemon threads as work arrives, up to ``max_workers``."""
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._daemons: list[threading.Thread] = []
        self._idle = 0
        """Pool threads done with their job and waiting for the next (guarded by ``_pool_lock``)."""
        self._pool_lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` on a pool thread."""
        future: Future[T] = Future()
        with self._pool_lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._jobs.put((future, fn, args, kwargs))
            if self._idle:
                self._idle -= 1  # an idle thread takes this job
            elif len(self._daemons) < self._max_workers:
                thread = threading.Thread(
                    target=self._work, name=f"{self._thread_name_prefix}-{len(self._daemons)}", daemon=True
                )
                thread.start()
                self._daemons.append(thread)
        return future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, fn, args, kwargs = job
            del job
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del future, fn, args, kwargs
            with self._pool_lock:
                self._idle += 1

    @property
    def idle_threads(self) -> int:
        """Pool threads waiting for work: a submit hands its job to one of them rather than starting a thread."""
        return self._idle

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the pool threads once the queued work is done (``cancel_futures``: drop queued work)."""
        with self._pool_lock:
            self._closed = True
            if cancel_futures:
                while True:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is not None:
                        job[0].cancel()
            threads = list(self._daemons)
            for _ in threads:
                self._jobs.put(None)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()


class BackgroundWorker:
    """Owns the shared event loop thread; started on first use, drained at interpreter exit."""

    def __init__(self) -> None:
        """Nothing starts yet: the loop thread starts on first use of :attr:`loop`."""
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
        loop.set_default_executor(ExitSafeExecutor())

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name="streamll-worker", daemon=True)
        thread.start()
        ready.wait()
        self._loop, self._thread = loop, thread

    def _forget_after_fork(self) -> None:
        """In a forked child the worker thread does not exist: start a new one on first use."""
        self._lock = threading.Lock()
        self._loop = None
        self._thread = None

    def in_worker_thread(self) -> bool:
        """True when called from the worker thread itself (where blocking would deadlock)."""
        thread = self._thread
        return thread is not None and threading.get_ident() == thread.ident

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


def _after_fork_in_child() -> None:
    """A forked child starts with no worker (the registry forgets its sinks in its own fork hook, run after this)."""
    worker._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = ["BackgroundWorker", "ExitSafeExecutor", "exit_timeout", "worker"]
