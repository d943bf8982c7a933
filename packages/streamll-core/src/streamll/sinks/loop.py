"""The sink's worker coroutine: connect, send batches (pipelined), settle, retry with backoff, drain.

One coroutine per sink runs on the shared worker loop
(:mod:`streamll.sinks.worker`). An idle sink writes an event at once; events
arriving during a write form the next batch; up to ``pipeline_depth`` batches
are in flight, in order; a failed batch and everything sent after it is
retried first, after a reconnect and a :class:`~streamll.backoff.Backoff` wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from streamll.backoff import Backoff
from streamll.errors import ConfigurationError
from streamll.sinks.buffer import BufferedSink, _InFlight
from streamll.sinks.results import BatchResult

if TYPE_CHECKING:
    from streamll.core.events import Event

logger = logging.getLogger("streamll")
_monotonic = time.monotonic

STOP_GRACE = 1.0
"""Seconds ``stop()`` allows after its timeout for a write or close it had to cancel to wind down."""


class DeliveryLoop(BufferedSink):
    """The worker layer of :class:`~streamll.sinks.base.BaseSink`."""

    async def _wait_for_events(self, in_flight: asyncio.Future[Any] | None = None) -> None:
        """Wait for new events (or for the batch ``in_flight`` to complete, when one is)."""
        assert self._wakeup is not None
        self._wakeup.clear()
        with self._lock:
            if self._queue or self._retry or (self._spill and self._spill.pending) or self._stopping:
                return
            self._waiting = True
        if in_flight is not None and in_flight.done():
            return
        await self._wakeup.wait()  # a batch in flight sets it when it completes (see _track)

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
        attempts = 0
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
                if isinstance(exc, ConfigurationError):  # not an outage: say so plainly, every time it is retried
                    self._log(logging.ERROR, "%s", exc)
                self._record_write_error("open", exc)
                if self._stopping and not self._ever_opened:
                    # never answered in this process's life: waiting out the stop timeout will not change that
                    from streamll.sinks.shutdown import describe_connect_failure

                    self._gave_up = describe_connect_failure(self, exc)
                    return False
                attempts += 1
                await self._sleep(self._retry_policy().delay(attempts))
        return True

    def _retry_policy(self) -> Backoff:
        """The shared backoff policy with this sink's ``retry_backoff`` and ``retry_backoff_max``."""
        return Backoff(self.retry_backoff, self.retry_backoff_max)

    def _record_write_error(self, what: str, exc: BaseException) -> None:
        self._healthy = False
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
        self._failed_writes = 0
        in_flight: deque[_InFlight] = deque()
        cancelled = abandoned = False
        try:
            await self._deliver(in_flight)
        except asyncio.CancelledError:  # only stop() cancels, when its timeout passed during a write or connect
            cancelled = True  # batches in flight are not known to be delivered: requeued below, then kept or counted
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
            for _batch, pending, _failed in in_flight:
                if pending is not None and not pending.done():
                    pending.cancel()
            self._requeue(in_flight)
            if not abandoned:
                await self._finish(cancelled)
            elif generation == self._generation and self._spill is not None:
                self._spill.close()

    async def _deliver(self, in_flight: deque[_InFlight]) -> None:
        """Send batches until the sink is stopped and drained (or past its stop deadline)."""
        while await self._ensure_open():
            if self._a_batch_failed(in_flight):
                going = await self._after_failure(in_flight)
            elif len(in_flight) >= self.pipeline_depth:
                # then check again before sending more: a later batch may have failed meanwhile
                going = await self._complete_oldest(in_flight) or await self._after_failure(in_flight)
            else:
                batch = self._take_batch()
                going = await (self._send(batch, in_flight) if batch else self._when_idle(in_flight))
            if not going:
                return

    async def _when_idle(self, in_flight: deque[_InFlight]) -> bool:
        """Nothing to send: wait for events or an ack, or settle the oldest batch; False once drained."""
        oldest = in_flight[0][1] if in_flight else None
        if oldest is not None and not oldest.done() and not self._stopping:
            await self._wait_for_events(oldest)  # new events are sent without waiting for this ack
            return True
        if in_flight:
            return await self._complete_oldest(in_flight) or await self._after_failure(in_flight)
        if self._stopping:
            return False
        await self._wait_for_events()
        return True

    async def _send(self, batch: list[Any], in_flight: deque[_InFlight]) -> bool:
        """Send one batch (after ``linger`` / ``min_write_interval``, topped up meanwhile); False past the deadline."""
        wait = self.linger or (self.min_write_interval - (_monotonic() - self._last_send))
        if wait > 0 and len(batch) < self.batch_size and not self._stopping:
            await asyncio.sleep(wait)
            batch.extend(self._top_up(self.batch_size - len(batch)))
        self._last_send = _monotonic()
        failed_before = self._stats.failed
        self._phase = "write"
        try:
            completion = await self.send_batch(batch)
        except Exception as exc:
            in_flight.append((batch, None, failed_before))
            self._failed_write(exc)
            return await self._after_failure(in_flight)
        in_flight.append((batch, self._track(completion), failed_before))
        if self.pipeline_depth > 1:
            await asyncio.sleep(0)  # the transport's own flusher writes the batch before this loop goes on
        return True

    def _track(self, completion: Awaitable[BatchResult | int | None]) -> asyncio.Future[BatchResult | int | None]:
        """The batch's completion as a future that wakes the worker loop when it is done."""
        future = asyncio.ensure_future(completion)
        wakeup = self._wakeup
        if wakeup is not None and not future.done():  # a finished batch is settled without waking the loop again
            future.add_done_callback(lambda _done: wakeup.set())
        return future

    def _settle(self, batch: list[Event], written: object, failed_before: int) -> None:
        """Count a completed write from what the transport reported (see :class:`BatchResult`).

        A bare ``int`` (the older protocol) is the delivered count; the events
        it leaves out are counted as failed unless the sink counted them itself
        since ``failed_before``.
        """
        size = len(batch)
        rejected: tuple[str, ...] = ()
        counted_by_sink = 0
        if isinstance(written, BatchResult):
            delivered, rejected = max(0, min(written.delivered, size)), written.rejected[:size]
        elif isinstance(written, int) and not isinstance(written, bool):
            delivered = max(0, min(written, size))
            counted_by_sink = self._stats.failed - failed_before
        else:
            delivered = size
        missing = max(0, size - delivered - len(rejected) - counted_by_sink)
        self._healthy = True
        with self._lock:
            self._stats.delivered += delivered
            self._stats.batches += 1
            self._stats.failed += len(rejected) + missing
            if rejected:
                self._stats.last_error = rejected[-1]
            if missing:
                self._stats.last_error = f"write_batch delivered {delivered} of {size} event(s)"
        for reason in rejected:
            self._log(logging.ERROR, "%s (counted as failed, not retried)", reason)
        if missing:
            self._log(
                logging.ERROR, "write_batch delivered %d of %d event(s); the rest counted as failed", delivered, size
            )
        with self._lock:  # only now is the batch settled: flush() returns after its failures are reported
            self._writing -= size
            self._idle.notify_all()

    async def _complete_oldest(self, in_flight: deque[_InFlight]) -> bool:
        """Wait for the oldest batch in flight and count it; False when it failed (it stays in ``in_flight``)."""
        batch, pending, failed_before = in_flight[0]
        assert pending is not None
        try:
            written = await pending
        except Exception as exc:
            self._failed_write(exc)
            return False
        in_flight.popleft()
        self._failed_writes = 0
        self._settle(batch, written, failed_before)
        return True

    def _a_batch_failed(self, in_flight: deque[_InFlight]) -> bool:
        """Settle the acknowledged batches at the front; True when a later one failed (it is then retried first).

        Nothing newer is sent while a failed batch waits for its retry, so an execution's events keep their order.
        """
        if len(in_flight) < 2:
            return False
        while in_flight:
            batch, pending, failed_before = in_flight[0]
            if pending is None or not pending.done() or _failed(pending) is not None:
                break
            in_flight.popleft()
            self._settle(batch, pending.result(), failed_before)
        for _batch, pending, _count in in_flight:
            error = _failed(pending)
            if error is not None:
                self._failed_write(error)
                return True
        return False

    def _failed_write(self, exc: BaseException) -> None:
        self._record_write_error("write", exc)

    async def _after_failure(self, in_flight: deque[_InFlight]) -> bool:
        """Put every batch in flight back (in order) for a retry, reconnect, back off; False past the stop deadline."""
        for _batch, pending, _failed in in_flight:
            if pending is not None and not pending.done():
                pending.cancel()
        for _batch, pending, _failed in in_flight:
            if pending is not None:
                with contextlib.suppress(BaseException):
                    await pending
        self._requeue(in_flight)
        if self._past_deadline():
            return False
        await self._reopen()
        self._failed_writes += 1
        await self._sleep(self._retry_policy().delay(self._failed_writes))
        with self._lock:
            self._stats.retries += 1
        return True

    async def _reopen(self) -> None:
        """Close after a failed write; the next :meth:`_ensure_open` re-opens (counted as a reconnect)."""
        self._opened = False
        self._reconnecting = True
        try:
            await self.aclose()
        except Exception as exc:
            logger.debug("streamll: %s: aclose after an error raised %r", self.name, exc)

    async def _finish(self, cancelled: bool) -> None:
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


def _failed(pending: asyncio.Future[Any] | None) -> BaseException | None:
    """The error of a completed batch (None while pending or when it succeeded)."""
    if pending is None or not pending.done():
        return None
    if pending.cancelled():
        return asyncio.CancelledError("batch cancelled")
    return pending.exception()


__all__ = ["STOP_GRACE", "DeliveryLoop"]
