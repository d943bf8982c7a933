"""What every sink holds: its options, its runtime state, and the API a transport overrides.

:class:`SinkState` is the bottom layer of :class:`~streamll.sinks.base.BaseSink`
(above it: :mod:`~streamll.sinks.buffer` and :mod:`~streamll.sinks.loop`). A
transport overrides only the methods under "subclass API" and reports each
batch as a :class:`~streamll.sinks.results.BatchResult`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, ClassVar

from streamll.core.records import TokenRecord
from streamll.core.serialization import encode_event
from streamll.sinks.overflow import Overflow, check_count, check_seconds, overflow_policy
from streamll.sinks.results import BatchResult
from streamll.sinks.stats import SinkStats

if TYPE_CHECKING:
    from streamll.core.events import Event
    from streamll.sinks.spill import SpillFile

logger = logging.getLogger("streamll")


class SinkState:
    """Options, runtime state and the overridable API of a sink (see :class:`~streamll.sinks.base.BaseSink`)."""

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
        """Apply the options given over the class defaults and check them: a bad value fails here, not later."""
        self.name = name or type(self).__name__
        if buffer_size is not None:
            self.buffer_size = buffer_size
        if buffer_bytes is not None:
            self.buffer_bytes = buffer_bytes
        if batch_size is not None:
            self.batch_size = batch_size
        if linger is not None:
            self.linger = linger
        check_count("buffer_size", self.buffer_size)
        check_count("buffer_bytes", self.buffer_bytes)
        check_count("batch_size", self.batch_size)
        check_seconds("linger", self.linger)
        check_seconds("block_timeout", block_timeout)
        self.overflow = overflow_policy(overflow)
        self.block_timeout = block_timeout
        self._spill_path = spill_path
        self._generation = 0
        """Bumped in a forked child, so the parent's worker coroutine, when collected there, leaves the sink alone."""
        self._last_logged: tuple[str, float] = ("", 0.0)
        self._init_state()

    def _init_state(self) -> None:
        """The runtime state: empty buffers, zero counters, not running, not connected."""
        self._spill: SpillFile | None = None
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._queue: deque[Event | TokenRecord] = deque()
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
        self._running = self._stopping = self._waiting = False
        self._wakeup: asyncio.Event | None = None
        self._done: threading.Event | None = None
        self._task: Future[None] | None = None
        self._deadline: float | None = None
        self._undelivered = 0
        self._opened = self._ever_opened = False
        """``_ever_opened``: :meth:`open` succeeded once; a sink that never connected gives up at once when stopping."""
        self._gave_up: str | None = None
        """Why the drain ended early (a destination that never accepted a connection)."""
        self._phase = "connect"
        self._reconnecting = False
        self._failed_writes = 0
        """Writes failed in a row (the retry number for :class:`~streamll.backoff.Backoff`)."""
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

    def start(self) -> None:
        """Start delivering (:meth:`streamll.sinks.base.BaseSink.start`)."""
        raise NotImplementedError

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

    def _log(self, level: int, message: str, *args: object) -> None:
        """Log, at most once a second for the same message, so a failing sink cannot flood the logs."""
        now = time.monotonic()
        text, when = self._last_logged
        if message == text and now - when < 1.0:
            return
        self._last_logged = (message, now)
        logger.log(level, "streamll sink %s: " + message, self.name, *args)


__all__ = ["SinkState"]
