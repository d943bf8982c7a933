"""The sink's in-memory buffer: the hot path (``enqueue``), the overflow policies, taking batches.

``enqueue`` runs on the program thread and only appends to a deque bounded
in bytes and events; the worker takes batches in emission order (records
awaiting a retry first, then the buffer, then a spill file) and encodes them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from streamll.core.records import TokenRecord
from streamll.core.serialization import encode_event
from streamll.sinks.overflow import RECORD_OVERHEAD, Overflow, estimate
from streamll.sinks.state import SinkState
from streamll.sinks.worker import worker

if TYPE_CHECKING:
    import asyncio

    from streamll.core.events import Event
    from streamll.sinks.results import BatchResult
    from streamll.sinks.spill import SpillFile

_monotonic = time.monotonic
_yield_gil = time.sleep

STARVED_AFTER = 0.005
"""Seconds buffered events may wait without the worker taking a batch before ``enqueue`` yields the GIL to it."""

ENCODE_SLICE = 64
"""Events the worker encodes before it offers the GIL back to the program thread."""


class BufferedSink(SinkState):
    """The buffer layer of :class:`~streamll.sinks.base.BaseSink`."""

    def enqueue(self, event: Event | TokenRecord) -> None:
        """Hand an event to the sink without waiting on I/O (called by ``emit``; a record is built on the worker)."""
        if not self._running:
            self.start()
        size = RECORD_OVERHEAD + len(event.token) if type(event) is TokenRecord else estimate(event)  # type: ignore[union-attr]
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

    def _make_room(self, event: Event | TokenRecord, size: int) -> bool:
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

    def _spill_one(self, spill: SpillFile, event: Event | TokenRecord) -> None:
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
                events: list[Event | TokenRecord] = [self._queue.popleft() for _ in range(count)]
                taken = 0
                for _ in range(count):
                    taken += self._sizes.popleft()
                self._bytes -= taken
                self._not_full.notify_all()
            elif self._spill is not None and self._spill.pending:
                events = [*self._spill.read(self.batch_size)]
                self._stats.replayed += len(events)
            else:
                return []
            self._writing += len(events)
        return self._encode_all(events)

    def _encode_all(self, events: list[Event | TokenRecord]) -> list[Any]:
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
                records.append(encode(event))  # type: ignore[arg-type]  # a record only where encodes_records
            except Exception as exc:
                with self._lock:
                    self._writing -= 1
                    self._stats.failed += 1
                    self._stats.last_error = f"cannot encode event {getattr(event, 'event_id', '?')}: {exc}"
                    self._idle.notify_all()
                self._log(logging.ERROR, "cannot encode an event, skipped it: %s: %s", type(exc).__name__, exc)
        return records

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

    def _requeue(self, in_flight: deque[_InFlight]) -> None:
        """Records of unfinished batches go back to the front of the retry queue, oldest first."""
        if not in_flight:
            return
        with self._lock:
            records = [record for batch, _pending, _failed in in_flight for record in batch]
            self._retry.extendleft(reversed(records))
            self._writing -= len(records)
            in_flight.clear()

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


_InFlight = tuple[list[Any], "asyncio.Future[BatchResult | int | None] | None", int]
"""A batch sent and not yet settled: its records, its completion (None when sending failed), failed count before."""

__all__ = ["ENCODE_SLICE", "STARVED_AFTER", "BufferedSink"]
