"""The producer's side of cancellation: listen on the broker for requests to stop a running execution.

While a ``streamll.execution()`` run is active, each of its sinks that can
carry cancellation (a Redis or NATS sink with ``per_execution=true``; it says
so with ``execution_log_url``) has the execution watched on that broker. A
request (``POST /executions/{id}/cancel`` on the relay, ``streamll.cancel``)
sets the run's cancel flag; the LM stream reader checks it between chunks.

The listening runs on one daemon thread with its own event loop, shared by
every run of the process, with one subscription per broker URL. Subscribing
is scheduled, never awaited: entering a run does not wait on the network.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from streamll.executions import ExecutionLog, open_execution_log

logger = logging.getLogger("streamll")


class _Watcher:
    """One thread and loop; one :class:`ExecutionLog` per broker URL."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._logs: dict[str, ExecutionLog] = {}

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="streamll-cancel", daemon=True).start()
                self._loop = loop
            return self._loop

    def _log(self, url: str) -> ExecutionLog:
        log = self._logs.get(url)
        if log is None:
            log = self._logs[url] = open_execution_log(url)
        return log

    def watch(self, urls: Iterable[str], execution_id: str, on_cancel: Callable[[], None]) -> list[Future[Any]]:
        """Start watching ``execution_id`` on every URL (scheduled; returns the futures of the subscriptions)."""
        loop = self._ensure_loop()
        futures = []
        for url in urls:
            try:
                log = self._log(url)
            except Exception as exc:  # a broken URL must not break the user's program
                logger.warning("streamll: cannot watch for cancellation on %s: %s", url.split("@")[-1], exc)
                continue
            future = asyncio.run_coroutine_threadsafe(log.watch_cancel(execution_id, on_cancel), loop)
            future.add_done_callback(_log_failure)
            futures.append(future)
        return futures

    def unwatch(self, urls: Iterable[str], execution_id: str) -> None:
        """Stop watching ``execution_id`` (scheduled)."""
        loop = self._loop
        if loop is None:
            return
        for url in urls:
            log = self._logs.get(url)
            if log is not None:
                asyncio.run_coroutine_threadsafe(log.unwatch_cancel(execution_id), loop).add_done_callback(_log_failure)


def _log_failure(future: Future[Any]) -> None:
    if not future.cancelled() and (exc := future.exception()) is not None:
        logger.warning("streamll: cancellation watch failed: %s: %s", type(exc).__name__, exc)


watcher = _Watcher()


def cancel_urls(sinks: Iterable[Any]) -> list[str]:
    """URLs of the sinks that can carry cancellation requests."""
    urls = []
    for sink in sinks:
        url = getattr(sink, "execution_log_url", None)
        if isinstance(url, str) and url not in urls:
            urls.append(url)
    return urls


__all__ = ["cancel_urls", "watcher"]
