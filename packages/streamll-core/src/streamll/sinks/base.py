"""BaseSink: where events go, and the batching machinery every transport reuses.

Two ways to write a sink:

* override :meth:`BaseSink.handle_event` (sync, one event at a time; runs on a
  helper thread, so it may block without slowing the program), or
* override the async :meth:`BaseSink.write_batch` plus :meth:`BaseSink.open` /
  :meth:`BaseSink.aclose` for a network transport (runs on the shared worker loop;
  raise to have the batch retried with backoff after a reconnect).

``emit`` only appends to a bounded in-memory buffer; the worker batches by
size and linger time. What happens when the buffer is full is the overflow
policy; every drop, retry and failure is counted in :attr:`BaseSink.stats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from enum import Enum
from typing import TYPE_CHECKING

from streamll.errors import ConfigurationError
from streamll.sinks.stats import SinkStats
from streamll.sinks.worker import worker

if TYPE_CHECKING:
    from streamll.core.events import Event
    from streamll.sinks.spill import SpillFile

logger = logging.getLogger("streamll")

STOP_GRACE = 1.0
"""Seconds ``stop()`` allows after its timeout for a write or close it had to cancel to wind down."""


def _check_count(option: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{option} must be a whole number >= 1, got {value!r}")


def _check_seconds(option: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigurationError(f"{option} must be a number of seconds >= 0, got {value!r}")


class Overflow(str, Enum):  # noqa: UP042 - str() of a member stays "Overflow.SPILL"
    """What a sink does with a new event when its buffer is full."""

    DROP_OLDEST = "drop_oldest"
    """Discard the oldest buffered event (counted in ``stats.dropped``). The default: never slows the program."""
    DROP_NEWEST = "drop_newest"
    """Discard the new event (counted in ``stats.dropped``)."""
    BLOCK = "block"
    """Wait up to ``block_timeout`` seconds for room, then discard the new event (counted)."""
    SPILL = "spill"
    """Append to a local file, replayed in order once the destination accepts writes again."""


class BaseSink:
    """A destination for events. Subclass it; see the module docstring."""

    buffer_size: int = 10_000
    """Events held in memory before the overflow policy applies."""
    batch_size: int = 200
    """Most events handed to one :meth:`write_batch` call."""
    linger: float = 0.005
    """Seconds to wait for a batch to fill once the first event is there."""
    retry_backoff: float = 0.1
    """First delay after a failed write; doubles up to :attr:`retry_backoff_max`."""
    retry_backoff_max: float = 5.0

    def __init__(
        self,
        *,
        name: str | None = None,
        buffer_size: int | None = None,
        batch_size: int | None = None,
        linger: float | None = None,
        overflow: Overflow | str = Overflow.DROP_OLDEST,
        block_timeout: float = 1.0,
        spill_path: str | None = None,
    ) -> None:
        self.name = name or type(self).__name__
        if buffer_size is not None:
            self.buffer_size = buffer_size
        if batch_size is not None:
            self.batch_size = batch_size
        if linger is not None:
            self.linger = linger
        _check_count("buffer_size", self.buffer_size)
        _check_count("batch_size", self.batch_size)
        _check_seconds("linger", self.linger)
        _check_seconds("block_timeout", block_timeout)
        try:
            self.overflow = Overflow(overflow)
        except ValueError:
            choices = ", ".join(policy.value for policy in Overflow)
            raise ConfigurationError(f"unknown overflow policy {overflow!r}; choose one of {choices}") from None
        self.block_timeout = block_timeout
        self._spill_path = spill_path
        self._spill: SpillFile | None = None
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._queue: deque[Event] = deque()
        self._retry_batch: list[Event] = []
        self._writing = 0
        """Events handed to the current ``write_batch`` call (taken from the buffer, not yet written)."""
        self._stats = SinkStats()
        self._running = False
        self._stopping = False
        self._waiting = False
        self._wakeup: asyncio.Event | None = None
        self._done: threading.Event | None = None
        self._task: Future[None] | None = None
        self._generation = 0
        """Bumped in a forked child, so the parent's worker coroutine, when collected there, leaves the sink alone."""
        self._deadline: float | None = None
        self._undelivered = 0
        self._opened = False
        self._ever_opened = False
        """True once :meth:`open` succeeded: a sink that never connected gives up at once when stopping."""
        self._gave_up: str | None = None
        """Why the drain ended early (a destination that never accepted a connection)."""
        self._phase = "connect"
        self._reconnecting = False
        self._last_logged: tuple[str, float] = ("", 0.0)

    # ------------------------------------------------------------------ subclass API

    def handle_event(self, event: Event) -> None:
        """Handle one event (sync). Override this, or :meth:`write_batch` for batched I/O."""
        raise NotImplementedError(f"{type(self).__name__} must override handle_event() or write_batch()")

    async def open(self) -> None:
        """Connect to the destination; called on the worker loop before the first write and after errors."""

    async def aclose(self) -> None:
        """Release connections; called on the worker loop when the sink stops or must reconnect."""

    async def write_batch(self, events: list[Event]) -> int | None:
        """Write a batch; return how many were delivered (``None`` means all).

        Raise to have the batch retried (after :meth:`aclose` and :meth:`open`)
        with backoff. Events reported as not delivered are not retried; they
        are counted in ``stats.failed`` unless the sink counted them already.
        The default runs :meth:`handle_event` for each event on a helper
        thread; an exception from it is counted in ``stats.failed`` and that
        event is not retried.
        """
        delivered, failed = await asyncio.to_thread(self._handle_each, events)
        with self._lock:
            self._stats.failed += failed
        return delivered

    # ------------------------------------------------------------------ lifecycle

    @property
    def is_running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._running

    def start(self) -> None:
        """Start delivering on the background worker (idempotent; emitting also starts a sink)."""
        from streamll.sinks.registry import track

        with self._lock:
            if self._running:
                return
            self._running = True
            self._stopping = False
            self._deadline = None
            self._undelivered = 0
            self._gave_up = None
            self._done = threading.Event()
            if self.overflow is Overflow.SPILL and self._spill is None:
                from streamll.sinks.spill import SpillFile

                self._spill = SpillFile(self._spill_path, name=self.name)
        track(self)
        self._task = worker.submit(self._run())

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything handed to the sink so far is delivered; False on timeout."""
        if not self._running or worker.in_worker_thread():
            return not self._pending()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._pending():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining if remaining is not None else 1.0)
        return True

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Deliver what is buffered (waiting at most ``timeout`` seconds), then close.

        Returns False when events were left undelivered; they are counted in
        ``stats.dropped`` (or left in the spill file, whose path is logged). A
        write or connect still hanging at the deadline is cancelled.
        """
        from streamll.sinks.registry import untrack

        done = self._request_stop(timeout)
        if done is None:
            return not self._pending() and not self._undelivered
        if not worker.in_worker_thread() and not done.wait(timeout):
            task = self._task
            if task is not None:
                task.cancel()
            done.wait(STOP_GRACE)
        untrack(self)
        return done.is_set() and not self._undelivered

    def _request_stop(self, timeout: float | None) -> threading.Event | None:
        """Tell the worker to drain and close, giving up ``timeout`` seconds from now; None when not running."""
        with self._lock:
            if not self._running:
                return None
            self._stopping = True
            self._deadline = None if timeout is None else time.monotonic() + timeout
            done = self._done
        self._wake()
        return done

    close = stop

    @property
    def stats(self) -> SinkStats:
        """A snapshot of this sink's counters."""
        with self._lock:
            queued = len(self._queue) + len(self._retry_batch) + self._writing
            return dataclasses.replace(self._stats, queued=queued)

    # ------------------------------------------------------------------ hot path

    def enqueue(self, event: Event) -> None:
        """Hand an event to the sink without waiting on I/O (called by ``emit``)."""
        if not self._running:
            self.start()
        with self._lock:
            self._stats.received += 1
            spill = self._spill
            if spill is not None and spill.pending:
                self._spill_one(spill, event)
                return
            if len(self._queue) >= self.buffer_size and not self._make_room(event):
                return
            self._queue.append(event)
            if self._waiting:
                self._waiting = False
                self._schedule_wake()

    def _make_room(self, event: Event) -> bool:
        """Apply the overflow policy with the lock held; True when ``event`` may be appended."""
        policy = self.overflow
        if policy is Overflow.DROP_OLDEST:
            self._queue.popleft()
            self._count_drop(1, "buffer full: dropped the oldest event")
            return True
        if policy is Overflow.SPILL and self._spill is not None:
            self._spill_one(self._spill, event)
            return False
        if policy is Overflow.BLOCK and not worker.in_worker_thread():
            deadline = time.monotonic() + self.block_timeout
            while len(self._queue) >= self.buffer_size and self._running:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._not_full.wait(remaining)
            if len(self._queue) < self.buffer_size:
                return True
        self._count_drop(1, "buffer full: dropped the new event")
        return False

    def _spill_one(self, spill: SpillFile, event: Event) -> None:
        try:
            spill.append(event)
            self._stats.spilled += 1
        except OSError as exc:
            self._count_drop(1, f"spill file {spill.path} not writable: {exc}")

    def _count_drop(self, count: int, reason: str) -> None:
        self._stats.dropped += count
        self._stats.last_error = reason
        self._log(logging.WARNING, "%s (%d dropped so far)", reason, self._stats.dropped)

    def _schedule_wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None:
            with contextlib.suppress(RuntimeError):  # loop closed at interpreter exit
                worker.call_soon(wakeup.set)

    def _wake(self) -> None:
        with self._lock:
            self._waiting = False
            self._schedule_wake()

    def _pending(self) -> bool:
        return bool(self._queue or self._retry_batch or self._writing or (self._spill and self._spill.pending))

    # ------------------------------------------------------------------ worker side

    def _handle_each(self, events: list[Event]) -> tuple[int, int]:
        delivered = failed = 0
        for event in events:
            try:
                self.handle_event(event)
                delivered += 1
            except Exception as exc:
                failed += 1
                self._stats.last_error = f"{type(exc).__name__}: {exc}"
                self._log(logging.ERROR, "handle_event raised %s: %s", type(exc).__name__, exc)
        return delivered, failed

    def _take_batch(self) -> list[Event]:
        """Next batch in emission order: a batch awaiting retry, the buffer, then the spill file."""
        with self._lock:
            if self._retry_batch:
                batch, self._retry_batch = self._retry_batch, []
            elif self._queue:
                count = min(self.batch_size, len(self._queue))
                batch = [self._queue.popleft() for _ in range(count)]
                self._not_full.notify_all()
            elif self._spill is not None and self._spill.pending:
                batch = self._spill.read(self.batch_size)
                self._stats.replayed += len(batch)
            else:
                batch = []
            self._writing += len(batch)
            return batch

    async def _wait_for_events(self) -> None:
        assert self._wakeup is not None
        self._wakeup.clear()
        with self._lock:
            if self._pending() or self._stopping:
                return
            self._waiting = True
        await self._wakeup.wait()

    def _past_deadline(self) -> bool:
        return self._stopping and self._deadline is not None and time.monotonic() >= self._deadline

    async def _sleep(self, seconds: float) -> None:
        """Back off, but no later than the stop deadline."""
        if self._deadline is not None:
            seconds = max(0.0, min(seconds, self._deadline - time.monotonic()))
        assert self._wakeup is not None
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout=seconds)

    async def _ensure_open(self) -> bool:
        backoff = self.retry_backoff
        failed_before = False
        while not self._opened:
            if self._past_deadline():
                return False
            self._phase = "connect"
            try:
                await self.open()
                self._opened = self._ever_opened = True
                if failed_before or self._reconnecting:
                    self._reconnecting = False
                    with self._lock:
                        self._stats.reconnects += 1
            except Exception as exc:
                failed_before = True
                self._record_write_error("open", exc)
                if self._stopping and not self._ever_opened:
                    # never answered in this process's life: waiting out the stop timeout will not change that
                    from streamll.sinks.shutdown import describe_connect_failure

                    self._gave_up = describe_connect_failure(self, exc)
                    return False
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.retry_backoff_max)
        return True

    def _record_write_error(self, what: str, exc: BaseException) -> None:
        with self._lock:
            self._stats.write_errors += 1
            self._stats.last_error = f"{what}: {type(exc).__name__}: {exc}"
        self._log(logging.WARNING, "%s failed (%s: %s); retrying with backoff", what, type(exc).__name__, exc)

    async def _run(self) -> None:
        self._wakeup = asyncio.Event()
        runner = asyncio.current_task()
        if runner is not None:
            # an idle sink nobody references any more is collected with this task (see GeneratorExit below)
            runner._log_destroy_pending = False  # type: ignore[attr-defined]
        generation = self._generation
        backoff = self.retry_backoff
        cancelled = abandoned = False
        in_flight: list[Event] = []
        try:
            while True:
                if not await self._ensure_open():
                    break
                batch = self._take_batch()
                if not batch:
                    if self._stopping:
                        break
                    await self._wait_for_events()
                    continue
                if self.linger and len(batch) < self.batch_size and not self._stopping and not self._retry_batch:
                    await asyncio.sleep(self.linger)
                    batch.extend(self._top_up(self.batch_size - len(batch)))
                failed_before = self._stats.failed
                self._phase, in_flight = "write", batch
                try:
                    written = await self.write_batch(batch)
                except Exception as exc:
                    in_flight = []
                    self._requeue_failed(batch)
                    self._record_write_error("write", exc)
                    if self._past_deadline():
                        break
                    await self._reopen()
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, self.retry_backoff_max)
                    with self._lock:
                        self._stats.retries += 1
                    continue
                backoff = self.retry_backoff
                in_flight = []
                self._settle(batch, written, failed_before)
        except asyncio.CancelledError:  # only stop() cancels, when its timeout passed during a write or connect
            cancelled = True
            if in_flight:  # not known to be delivered: with a spill file it is kept, else counted as dropped
                self._requeue_failed(in_flight)
            from streamll.sinks.shutdown import destination

            where = destination(self) or "the destination"
            doing = "a write to" if self._phase == "write" else "connecting to"
            self._log(logging.ERROR, "stop timeout passed while %s %s was still pending; gave up", doing, where)
        except GeneratorExit:
            # the task was garbage-collected: the sink sat idle and nobody can hand it events any more,
            # or a forked child dropped its copy of the parent's worker. Nothing to deliver or report.
            abandoned = True
            raise
        except BaseException as exc:  # never let the worker die silently
            self._log(logging.ERROR, "sink worker crashed: %s: %s", type(exc).__name__, exc)
            raise
        finally:
            if not abandoned:
                await self._finish(cancelled)
            elif generation == self._generation and self._spill is not None:
                self._spill.close()

    def _settle(self, batch: list[Event], written: object, failed_before: int) -> None:
        """Count a completed write; events ``write_batch`` did not deliver and did not count are counted as failed."""
        if isinstance(written, int) and not isinstance(written, bool):
            delivered = max(0, min(written, len(batch)))
        else:
            delivered = len(batch)
        with self._lock:
            self._writing -= len(batch)
            self._stats.delivered += delivered
            self._stats.batches += 1
            uncounted = len(batch) - delivered - (self._stats.failed - failed_before)
            if uncounted > 0:
                self._stats.failed += uncounted
                self._stats.last_error = f"write_batch delivered {delivered} of {len(batch)} event(s)"
            self._idle.notify_all()
        if uncounted > 0:
            self._log(
                logging.ERROR,
                "write_batch delivered %d of %d event(s); the rest counted as failed",
                delivered,
                len(batch),
            )

    def _top_up(self, room: int) -> list[Event]:
        with self._lock:
            count = min(room, len(self._queue))
            extra = [self._queue.popleft() for _ in range(count)]
            if extra:
                self._writing += len(extra)
                self._not_full.notify_all()
            return extra

    def _requeue_failed(self, batch: list[Event]) -> None:
        with self._lock:
            self._retry_batch = batch
            self._writing -= len(batch)

    async def _reopen(self) -> None:
        """Close after a failed write; the next :meth:`_ensure_open` re-opens (counted as a reconnect)."""
        self._opened = False
        self._reconnecting = True
        try:
            await self.aclose()
        except Exception as exc:
            logger.debug("streamll: %s: aclose after an error raised %r", self.name, exc)

    async def _finish(self, cancelled: bool = False) -> None:
        """Close, count what was left undelivered as dropped, and tell ``stop()`` it is done."""
        try:
            if self._opened:
                self._opened = False
                try:
                    if cancelled:  # the destination already hung once: do not wait on it for long
                        await asyncio.wait_for(self.aclose(), STOP_GRACE / 2)
                    else:
                        await self.aclose()
                except (Exception, asyncio.CancelledError) as exc:
                    self._log(logging.WARNING, "close failed: %s: %s", type(exc).__name__, exc)
        finally:
            self._account_leftovers()

    def _account_leftovers(self) -> None:
        with self._lock:
            spill = self._spill
            if spill is not None and (self._retry_batch or self._queue):
                # spill never loses what it accepted: what is still in memory goes to the front of the file
                kept = [*self._retry_batch, *self._queue]
                try:
                    spill.put_back(kept)
                    self._queue.clear()
                    self._retry_batch = []
                    self._stats.spilled += len(kept)
                except OSError as exc:
                    self._log(logging.ERROR, "could not keep %d event(s) in spill file: %s", len(kept), exc)
            left = len(self._queue) + len(self._retry_batch) + self._writing
            self._queue.clear()
            self._retry_batch = []
            self._writing = 0
            if left:
                self._stats.dropped += left
                self._stats.last_error = f"stopped with {left} undelivered event(s)"
                if self._gave_up:
                    self._stats.last_error += f": {self._gave_up}"
            self._spill = None
            self._undelivered = left + (spill.pending if spill is not None else 0)
            self._running = False
            self._idle.notify_all()
            self._not_full.notify_all()
        if left and self._gave_up:
            self._log(
                logging.ERROR, "stopped with %d undelivered event(s) (counted as dropped): %s", left, self._gave_up
            )
        elif left:
            self._log(logging.ERROR, "stopped with %d undelivered event(s) (counted as dropped)", left)
        if spill is not None:
            if spill.pending:
                self._log(logging.ERROR, "%d event(s) remain in spill file %s", spill.pending, spill.path)
            spill.close()
        if self._done is not None:
            self._done.set()

    def _reset_after_fork(self) -> None:
        """In a forked child: drop the parent's buffer, connection state and worker.

        The parent delivers what it had buffered; the child starts with empty
        counters, re-opens on its first event, and spills (if it must) to a
        file of its own rather than the parent's.
        """
        self._generation += 1
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._queue = deque()
        self._retry_batch = []
        self._writing = 0
        self._stats = SinkStats()
        self._running = False
        self._stopping = False
        self._waiting = False
        self._wakeup = None
        self._done = None
        self._task = None
        self._deadline = None
        self._opened = False
        self._ever_opened = False
        self._gave_up = None
        self._reconnecting = False
        self._undelivered = 0
        self._spill = None
        self._spill_path = None

    def _log(self, level: int, message: str, *args: object) -> None:
        """Log, at most once a second for the same message, so a failing sink cannot flood the logs."""
        now = time.monotonic()
        text, when = self._last_logged
        if message == text and now - when < 1.0:
            return
        self._last_logged = (message, now)
        logger.log(level, "streamll sink %s: " + message, self.name, *args)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} running={self._running}>"


__all__ = ["BaseSink", "Overflow"]
