"""Test sinks with a controllable destination, and waiting on conditions with a deadline."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from streamll.core.events import Event
from streamll.sinks.base import BaseSink
from streamll.sinks.worker import worker


def event(index: int, event_type: str = "custom") -> Event:
    """A custom event carrying its position in ``data["i"]``."""
    return Event(event_type=event_type, execution_id="exec", sequence=index, data={"i": index})


def indices(events: list[Event]) -> list[int]:
    """The ``data["i"]`` of each event, in order."""
    return [item.data["i"] for item in events]


class GatedSink(BaseSink):
    """A destination that accepts a batch only when the test allows it.

    ``write_batch`` waits on the worker loop for a permit (``allow(n)``) or for
    the gate to open for good (``open_gate()``); ``started`` counts the batches
    that reached the destination, ``batches`` the ones written.
    """

    retry_backoff = 0.01
    retry_backoff_max = 0.05

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.batches: list[list[Event]] = []
        self.started = 0
        self._permits = asyncio.Semaphore(0)
        self._open = False

    async def write_batch(self, events: list[Event]) -> int | None:
        self.started += 1
        if not self._open:
            await self._permits.acquire()
        self.batches.append(list(events))
        return None

    def allow(self, count: int = 1) -> None:
        """Let ``count`` more batches through."""
        for _ in range(count):
            worker.call_soon(self._permits.release)

    def open_gate(self) -> None:
        """Let every batch through from now on."""

        def release() -> None:
            self._open = True
            self._permits.release()

        worker.call_soon(release)

    @property
    def written(self) -> list[Event]:
        return [item for batch in list(self.batches) for item in batch]


class FlakySink(BaseSink):
    """A destination that is down (``write_batch`` raises) until ``up`` is set, or for its first ``failures`` writes."""

    retry_backoff = 0.01
    retry_backoff_max = 0.05

    def __init__(self, *, failures: int | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.up = threading.Event()
        self.failures = failures
        self.batches: list[list[Event]] = []
        self.opens = 0
        self.closes = 0

    async def open(self) -> None:
        self.opens += 1

    async def aclose(self) -> None:
        self.closes += 1

    async def write_batch(self, events: list[Event]) -> int | None:
        if self.failures is not None:
            if self.failures > 0:
                self.failures -= 1
                raise ConnectionError("destination down")
        elif not self.up.is_set():
            raise ConnectionError("destination down")
        self.batches.append(list(events))
        return None

    @property
    def written(self) -> list[Event]:
        return [item for batch in list(self.batches) for item in batch]
