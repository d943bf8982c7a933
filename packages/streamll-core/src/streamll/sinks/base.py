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

import dataclasses
import threading
import time
from typing import Any

from streamll.sinks.buffer import ENCODE_SLICE, STARVED_AFTER
from streamll.sinks.loop import STOP_GRACE, DeliveryLoop
from streamll.sinks.overflow import EVENT_OVERHEAD, Overflow
from streamll.sinks.stats import SinkStats
from streamll.sinks.worker import worker


class BaseSink(DeliveryLoop):
    """A destination for events. Subclass it; see the module docstring."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Decide per subclass whether its ``encode`` takes records and whether ``dispatch`` may hand it records."""
        super().__init_subclass__(**kwargs)
        if "encode" in cls.__dict__ and "encodes_records" not in cls.__dict__:
            cls.encodes_records = False
        cls.takes_records = cls.enqueue is BaseSink.enqueue

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

    def _reset_after_fork(self) -> None:
        """In a forked child: drop the parent's buffer, connection state and worker.

        The parent delivers what it had buffered; the child starts with empty
        counters, re-opens on its first event, and spills (if it must) to a
        file of its own rather than the parent's.
        """
        generation = self._generation
        self._init_state()
        self._generation = generation + 1
        self._spill_path = None

    def __repr__(self) -> str:
        """Class, name and whether the sink is running (what logs and failed tests show)."""
        return f"<{type(self).__name__} {self.name!r} running={self._running}>"


__all__ = ["ENCODE_SLICE", "EVENT_OVERHEAD", "STARVED_AFTER", "STOP_GRACE", "BaseSink", "Overflow"]
