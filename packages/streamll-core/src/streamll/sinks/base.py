"""BaseSink: where events go, and the batching machinery every transport reuses.

Two ways to write a sink:

* override :meth:`BaseSink.handle_event` (sync, one event at a time; runs on a
  helper thread, so it may block without slowing the program), or
* override the async :meth:`BaseSink.write_batch` plus :meth:`BaseSink.open` /
  :meth:`BaseSink.aclose` for a network transport (runs on the shared worker loop;
  raise to have the batch retried with backoff after a reconnect).

``emit`` only appends to an in-memory buffer bounded in bytes (and events).
The worker batches adaptively: an idle sink writes an event at once; what
arrives while a write is in flight forms the next batch (up to
``batch_size``), so latency at low rates is one write and batches are full
at high rates. A transport that acknowledges asynchronously can override
:meth:`BaseSink.send_batch` to keep ``pipeline_depth`` batches outstanding.
Events are turned into what the transport writes by :meth:`BaseSink.encode`
once, on the worker; an event that cannot be encoded fails alone.
What happens when the buffer is full is the overflow policy; every drop,
retry and failure is counted in :attr:`BaseSink.stats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable
from concurrent.futures import Future
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from streamll.core.events import TokenEvent
from streamll.core.records import TokenRecord
from streamll.core.serialization import encode_event
from streamll.errors import ConfigurationError
from streamll.sinks.results import BatchResult
from streamll.sinks.stats import SinkStats
from streamll.sinks.worker import worker

if TYPE_CHECKING:
    from streamll.core.events import Event
    from streamll.sinks.spill import SpillFile

logger = logging.getLogger("streamll")
_monotonic = time.monotonic
_yield_gil = time.sleep

EVENT_OVERHEAD = 360
"""Bytes an event's envelope takes once encoded (ids, timestamp, keys); the byte budget's per-event estimate."""

RECORD_OVERHEAD = EVENT_OVERHEAD + 6 * 16
"""The estimate for a token record: the envelope and the six ``data`` entries a token has on the wire."""

STARVED_AFTER = 0.005
"""Seconds buffered events may wait without the worker taking a batch before ``enqueue`` yields the GIL to it."""

ENCODE_SLICE = 64
"""Events the worker encodes before it offers the GIL back to the program thread."""

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
    """Discard the oldest buffered event (counted in ``stats.dropped``). The default.

    While the destination accepts writes (the last one succeeded), a full buffer first waits up to
    ``block_timeout`` for room: a healthy broker never causes a drop, a burst only waits for it. When
    the destination is down, nothing waits: the oldest event is dropped at once.
    """
    DROP_NEWEST = "drop_newest"
    """Discard the new event (counted in ``stats.dropped``)."""
    BLOCK = "block"
    """Wait up to ``block_timeout`` seconds for room, then discard the new event (counted)."""
    SPILL = "spill"
    """Append to a local file, replayed in order once the destination accepts writes again."""


class BaseSink:
    """A destination for events. Subclass it; see the module docstring."""

    buffer_bytes: int = 64 * 1024 * 1024
    """Bytes of events held in memory before the overflow policy applies (estimated per event)."""
    buffer_size: int = 1_000_000
    """Events held in memory before the overflow policy applies (the byte budget usually binds first)."""
    batch_size: int = 200
    """Most events handed to one :meth:`write_batch` call."""
    linger: float = 0.0
    """Seconds to wait for a batch to fill before writing; 0 (the default) writes at once when idle."""
    min_write_interval: float = 0.0
    """Seconds between the starts of two writes (0, the default: none; events arriving while a write is in
    flight already share the next one). The loop's timers wake in whole milliseconds, so a value under
    0.001 delays a write by about a millisecond; measured, 0.0005 saved no CPU per token."""
    pipeline_depth: int = 1
    """Batches sent and not yet acknowledged at once (see :meth:`send_batch`)."""
    retry_backoff: float = 0.05
    """First delay after a failed write or connect; doubles (with jitter) up to :attr:`retry_backoff_max`."""
    retry_backoff_max: float = 1.0
    encodes_records: ClassVar[bool] = False
    """True when :meth:`encode` takes a :class:`~streamll.core.records.TokenRecord` as it is (it reads only
    the attributes transports write and encodes with ``encode_event``); otherwise each record is built into
    its :class:`~streamll.core.events.TokenEvent` on the worker first. A subclass overriding ``encode``
    without setting it gets events."""
    takes_records: ClassVar[bool] = True
    """False for a subclass overriding :meth:`enqueue`: ``dispatch`` hands it built events."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "encode" in cls.__dict__ and "encodes_records" not in cls.__dict__:
            cls.encodes_records = False
        cls.takes_records = cls.enqueue is BaseSink.enqueue

    def __init__(
        self,
        *,
        name: str | None = None,
        buffer_size: int | None = None,
        buffer_bytes: int | None = None,
        batch_size: int | None = None,
        linger: float | None = None,
        overflow: Overflow | str = Overflow.DROP_OLDEST,
        block_timeout: float = 1.0,
        spill_path: str | None = None,
    ) -> None:
        self.name = name or type(self).__name__
        if buffer_size is not None:
            self.buffer_size = buffer_size
        if buffer_bytes is not None:
            self.buffer_bytes = buffer_bytes
        if batch_size is not None:
            self.batch_size = batch_size
        if linger is not None:
            self.linger = linger
        _check_count("buffer_size", self.buffer_size)
        _check_count("buffer_bytes", self.buffer_bytes)
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
        self._sizes: deque[int] = deque()
        """Estimated bytes of each event in ``_queue`` (what the byte budget counts)."""
        self._bytes = 0
        self._retry: deque[Any] = deque()
        """Encoded records of failed writes, written again (first) after a reconnect."""
        self._writing = 0
        """Events handed to the current ``write_batch`` call (taken from the buffer, not yet written)."""
        self._stats = SinkStats()
        self._received = 0
        """``stats.received``, kept apart from ``_stats`` so ``enqueue`` does one attribute write."""
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
        self._backoff = self.retry_backoff
        self._progress = 0.0
        """When the worker last took a batch (``time.monotonic``); ``enqueue`` yields the GIL when it is old."""
        self._last_send = 0.0
        self._healthy = False
        """True while the last write succeeded: a full buffer then waits for room (``drop_oldest``), not drops."""

    # ------------------------------------------------------------------ subclass API

    def handle_event(self, event: Event) -> None:
        """Handle one event (sync). Override this, or :meth:`write_batch` for batched I/O."""
        raise NotImplementedError(f"{type(self).__name__} must override handle_event() or write_batch()")

    async def open(self) -> None:
        """Connect to the destination; called on the worker loop before the first write and after errors."""

    async def aclose(self) -> None:
        """Release connections; called on the worker loop when the sink stops or must reconnect."""

    def encode(self, event: Event) -> Any:
        """What :meth:`write_batch` receives for ``event``; called once per event, on the worker.

        Transports return the encoded body (and whatever else they write),
        so a batch retried after an error is not encoded again. Raise when
        the event cannot be written at all: it is counted in ``stats.failed``
        and the rest of the batch goes on. The default returns the event.
        """
        return event

    def record_body(self, record: Any) -> bytes:
        """The v1 JSON body of a record from :meth:`encode` (what a spill file keeps when the sink stops).

        Transports whose :meth:`encode` returns more than the event override it.
        """
        return encode_event(record)

    async def send_batch(self, records: list[Any]) -> Awaitable[BatchResult | int | None]:
        """Send a batch in order and return an awaitable for its delivery count (pipelining).

        The worker sends the next batch as soon as this returns, keeping up
        to :attr:`pipeline_depth` batches unacknowledged; order between
        batches is the order of ``send_batch`` calls. The default awaits
        :meth:`write_batch` and returns its result already resolved.
        """
        written = await self.write_batch(records)
        done: asyncio.Future[BatchResult | int | None] = asyncio.get_running_loop().create_future()
        done.set_result(written)
        return done

    async def write_batch(self, events: list[Any]) -> BatchResult | int | None:
        """Write a batch; return a :class:`~streamll.sinks.results.BatchResult` (or ``None``: all delivered).

        Raise to have the batch retried (after :meth:`aclose` and :meth:`open`)
        with backoff. Events the result reports rejected, or does not report
        delivered, are counted in ``stats.failed`` and not retried. (A bare
        ``int`` is read as the delivered count.) The default runs
        :meth:`handle_event` for each event on a helper thread; an exception
        from it rejects that event alone.
        """
        return await asyncio.to_thread(self._handle_each, events)

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
            queued = len(self._queue) + len(self._retry) + self._writing
            return dataclasses.replace(self._stats, received=self._received, queued=queued, queued_bytes=self._bytes)

    # ------------------------------------------------------------------ hot path

    def enqueue(self, event: Event | TokenRecord) -> None:
        """Hand an event to the sink without waiting on I/O (called by ``emit``; a record is built on the worker)."""
        if not self._running:
            self.start()
        size = _estimate(event)
        with self._lock:
            self._received += 1
            if self._spill is not None and self._spill.pending:
                self._spill_one(self._spill, event)
                return
            queue = self._queue
            if (self._bytes + size > self.buffer_bytes or len(queue) >= self.buffer_size) and not self._make_room(
                event, size
            ):
                return
            backlog = len(queue)
            queue.append(event)
            self._sizes.append(size)
            self._bytes += size
            if self._waiting:
                self._waiting = False
                self._schedule_wake()
        if backlog and _monotonic() - self._progress > STARVED_AFTER and not worker.in_worker_thread():
            # A CPU-bound program thread keeps the GIL for whole switch intervals, and the worker needs it
            # after every socket operation: hand it over now, so delivery keeps up (see ARCHITECTURE.md).
            self._progress = _monotonic()
            _yield_gil(0)

    def _full(self, size: int) -> bool:
        return bool(self._queue) and (self._bytes + size > self.buffer_bytes or len(self._queue) >= self.buffer_size)

    def _make_room(self, event: Event, size: int) -> bool:
        """Apply the overflow policy with the lock held; True when ``event`` may be appended."""
        policy = self.overflow
        if not self._queue:  # one event larger than the whole budget still goes: nothing else is held
            return True
        if policy is Overflow.DROP_OLDEST:
            if self._healthy and self._wait_for_room(size):
                return True  # the destination takes writes: a burst waits for it rather than losing events
            dropped = 0
            while self._full(size):
                self._queue.popleft()
                self._bytes -= self._sizes.popleft()
                dropped += 1
            self._count_drop(dropped, "buffer full: dropped the oldest event")
            return True
        if policy is Overflow.SPILL and self._spill is not None:
            self._spill_one(self._spill, event)
            return False
        if policy is Overflow.BLOCK and self._wait_for_room(size):
            return True
        self._count_drop(1, "buffer full: dropped the new event")
        return False

    def _wait_for_room(self, size: int) -> bool:
        """Wait (lock held) up to ``block_timeout`` for the buffer to take ``size`` more bytes."""
        if worker.in_worker_thread():
            return False
        deadline = time.monotonic() + self.block_timeout
        while self._full(size) and self._running:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._not_full.wait(remaining)
        return not self._full(size)

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
        return bool(self._queue or self._retry or self._writing or (self._spill and self._spill.pending))

    # ------------------------------------------------------------------ worker side

    def _handle_each(self, events: list[Event]) -> BatchResult:
        delivered = 0
        rejected: list[str] = []
        for event in events:
            try:
                self.handle_event(event)
                delivered += 1
            except Exception as exc:
                rejected.append(f"handle_event raised {type(exc).__name__}: {exc}")
        return BatchResult.of(delivered, rejected)

    def _take_batch(self) -> list[Any]:
        """Next batch of encoded records in emission order: records awaiting retry, the buffer, then the spill file."""
        self._progress = _monotonic()
        with self._lock:
            if self._retry:
                count = min(self.batch_size, len(self._retry))
                records = [self._retry.popleft() for _ in range(count)]
                self._writing += count
                return records
            if self._queue:
                count = min(self.batch_size, len(self._queue))
                events = [self._queue.popleft() for _ in range(count)]
                taken = 0
                for _ in range(count):
                    taken += self._sizes.popleft()
                self._bytes -= taken
                self._not_full.notify_all()
            elif self._spill is not None and self._spill.pending:
                events = self._spill.read(self.batch_size)
                self._stats.replayed += len(events)
            else:
                return []
            self._writing += len(events)
        return self._encode_all(events)

    def _encode_all(self, events: list[Event]) -> list[Any]:
        """Encode each event; one that cannot be encoded is counted as failed alone (and not retried)."""
        encode = self.encode
        build = not self.encodes_records
        records: list[Any] = []
        for position, event in enumerate(events, 1):
            if not position % ENCODE_SLICE:
                _yield_gil(0)  # let a waiting program thread run: encoding a batch must not stall it for ms
            try:
                if build and type(event) is TokenRecord:
                    event = event.event()
                records.append(encode(event))
            except Exception as exc:
                with self._lock:
                    self._writing -= 1
                    self._stats.failed += 1
                    self._stats.last_error = f"cannot encode event {getattr(event, 'event_id', '?')}: {exc}"
                    self._idle.notify_all()
                self._log(logging.ERROR, "cannot encode an event, skipped it: %s: %s", type(exc).__name__, exc)
        return records

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
                if isinstance(exc, ConfigurationError):  # not an outage: say so plainly, every time it is retried
                    self._log(logging.ERROR, "%s", exc)
                self._record_write_error("open", exc)
                if self._stopping and not self._ever_opened:
                    # never answered in this process's life: waiting out the stop timeout will not change that
                    from streamll.sinks.shutdown import describe_connect_failure

                    self._gave_up = describe_connect_failure(self, exc)
                    return False
                await self._sleep(backoff)
                backoff = self._next_backoff(backoff)
        return True

    def _next_backoff(self, backoff: float) -> float:
        """Double, capped at ``retry_backoff_max``, with +-25% jitter so many producers do not retry in step."""
        return min(backoff * 2, self.retry_backoff_max) * random.uniform(0.75, 1.25)

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
        self._backoff = self.retry_backoff
        in_flight: deque[_InFlight] = deque()
        cancelled = abandoned = False
        try:
            while True:
                if not await self._ensure_open():
                    break
                if self._a_batch_failed(in_flight):
                    if not await self._after_failure(in_flight):
                        break
                    continue
                if len(in_flight) >= self.pipeline_depth:
                    if not await self._complete_oldest(in_flight) and not await self._after_failure(in_flight):
                        break
                    continue  # a later batch may have failed meanwhile: check before sending more
                batch = self._take_batch()
                if not batch:
                    oldest = in_flight[0][1] if in_flight else None
                    if oldest is not None and not oldest.done() and not self._stopping:
                        await self._wait_for_events(oldest)  # new events are sent without waiting for this ack
                        continue
                    if in_flight:
                        if not await self._complete_oldest(in_flight) and not await self._after_failure(in_flight):
                            break
                        continue
                    if self._stopping:
                        break
                    await self._wait_for_events()
                    continue
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
                    if not await self._after_failure(in_flight):
                        break
                    continue
                in_flight.append((batch, self._track(completion), failed_before))
                if self.pipeline_depth > 1:
                    await asyncio.sleep(0)  # the transport's own flusher writes the batch before this loop goes on
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

    def _track(self, completion: Awaitable[int | None]) -> asyncio.Future[int | None]:
        """The batch's completion as a future that wakes the worker loop when it is done."""
        future = asyncio.ensure_future(completion)
        wakeup = self._wakeup
        if wakeup is not None:
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
            self._writing -= size
            self._stats.delivered += delivered
            self._stats.batches += 1
            self._stats.failed += len(rejected) + missing
            if rejected:
                self._stats.last_error = rejected[-1]
            if missing:
                self._stats.last_error = f"write_batch delivered {delivered} of {size} event(s)"
            self._idle.notify_all()
        for reason in rejected:
            self._log(logging.ERROR, "%s (counted as failed, not retried)", reason)
        if missing:
            self._log(
                logging.ERROR, "write_batch delivered %d of %d event(s); the rest counted as failed", delivered, size
            )

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
        self._backoff = self.retry_backoff
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
        await self._sleep(self._backoff)
        self._backoff = self._next_backoff(self._backoff)
        with self._lock:
            self._stats.retries += 1
        return True

    def _requeue(self, in_flight: deque[_InFlight]) -> None:
        """Records of unfinished batches go back to the front of the retry queue, oldest first."""
        if not in_flight:
            return
        with self._lock:
            records = [record for batch, _pending, _failed in in_flight for record in batch]
            self._retry.extendleft(reversed(records))
            self._writing -= len(records)
            in_flight.clear()

    def _top_up(self, room: int) -> list[Any]:
        with self._lock:
            count = min(room, len(self._queue))
            extra = [self._queue.popleft() for _ in range(count)]
            for _ in range(count):
                self._bytes -= self._sizes.popleft()
            if extra:
                self._writing += len(extra)
                self._not_full.notify_all()
        return self._encode_all(extra)

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
            if spill is not None and (self._retry or self._queue):
                # spill never loses what it accepted: what is still in memory goes to the front of the file
                bodies = [*map(self.record_body, self._retry), *map(encode_event, self._queue)]
                try:
                    spill.put_back_bodies(bodies)
                    self._queue.clear()
                    self._retry.clear()
                    self._stats.spilled += len(bodies)
                except OSError as exc:
                    self._log(logging.ERROR, "could not keep %d event(s) in spill file: %s", len(bodies), exc)
            left = len(self._queue) + len(self._retry) + self._writing
            self._queue.clear()
            self._sizes.clear()
            self._bytes = 0
            self._retry.clear()
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
        self._sizes = deque()
        self._bytes = 0
        self._retry = deque()
        self._writing = 0
        self._stats = SinkStats()
        self._received = 0
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
        self._healthy = False
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


_InFlight = tuple[list[Any], "asyncio.Future[BatchResult | int | None] | None", int]
"""A batch sent and not yet settled: its records, its completion (None when sending failed), failed count before."""


def _failed(pending: asyncio.Future[Any] | None) -> BaseException | None:
    """The error of a completed batch (None while pending or when it succeeded)."""
    if pending is None or not pending.done():
        return None
    if pending.cancelled():
        return asyncio.CancelledError("batch cancelled")
    return pending.exception()


def _estimate(event: Event | TokenRecord) -> int:
    """Bytes ``event`` will take encoded, without encoding it (the byte budget's measure)."""
    kind = type(event)
    if kind is TokenRecord:  # its data gets the four token fields when encoded
        return RECORD_OVERHEAD + len(event.token)  # type: ignore[union-attr]
    if kind is TokenEvent:
        return EVENT_OVERHEAD + len(event.data) * 16 + len(event.token)  # type: ignore[union-attr]
    size = EVENT_OVERHEAD
    for value in event.data.values():
        size += 16 + (len(value) if isinstance(value, (str, bytes)) else 64)
    return size


__all__ = ["BaseSink", "Overflow"]
