"""One broker reader per execution per relay process, shared by every connection to that execution.

Without it, 500 browsers watching one answer mean 500 blocking reads on the
broker and 500 JSON decodes of every token. A feed reads the execution once,
keeps its events (de-duplicated by sequence) while anyone watches, and each
connection follows the list from its own position. This is a cache of broker
reads, not state: a feed is dropped when its last connection goes, and any
replica builds the same one from the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from streamll.executions import ExecutionLog, StoredEvent


class _Feed:
    """The events of one execution as read so far, and a reader task appending to them."""

    def __init__(self, log: ExecutionLog, execution_id: str) -> None:
        self.events: list[StoredEvent] = []
        self.users = 0
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._read(log, execution_id), name=f"streamll-feed-{execution_id}")

    async def _read(self, log: ExecutionLog, execution_id: str) -> None:
        last = -1
        bodies = log.bodies(execution_id)
        try:
            async for body in bodies:
                event = StoredEvent.parse(body)
                if event is None or event.sequence <= last:
                    continue  # not an event, or a repeat a retried broker write left
                last = event.sequence
                self.events.append(event)
                self._wake()
                if event.closes_execution:
                    return
        finally:
            with contextlib.suppress(Exception):
                await bodies.aclose()  # type: ignore[attr-defined]
            self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    @property
    def usable(self) -> bool:
        """False once the reader failed (a new connection starts a new feed)."""
        return not (self.task.done() and not self.task.cancelled() and self.task.exception() is not None)

    async def follow(self, after: int) -> AsyncIterator[list[StoredEvent]]:
        """Events with ``sequence > after`` in batches (all that are there), until the execution closes.

        A connection that fell behind gets what piled up in one batch, so it
        catches up with one write instead of one per event.
        """
        index = 0
        while True:
            events = self.events
            if index < len(events):
                batch = [event for event in events[index:] if event.sequence > after]
                index = len(events)
                if batch:
                    yield batch
                continue
            if self.task.done():
                if not self.task.cancelled() and (exc := self.task.exception()) is not None:
                    raise exc
                return
            await self._changed.wait()


class Hub:
    """The feeds of one relay process."""

    def __init__(self, log: ExecutionLog) -> None:
        """One feed per execution being watched, all read from ``log``."""
        self.log = log
        self.feeds: dict[str, _Feed] = {}

    async def batches(self, execution_id: str, after: int = -1) -> AsyncIterator[list[StoredEvent]]:
        """The execution's events after ``after``, each once and in batches, ending after its outermost end / error."""
        feed = self.feeds.get(execution_id)
        if feed is None or not feed.usable:
            feed = self.feeds[execution_id] = _Feed(self.log, execution_id)
        feed.users += 1
        try:
            async for batch in feed.follow(after):
                yield batch
        finally:
            feed.users -= 1
            if feed.users == 0:
                if self.feeds.get(execution_id) is feed:
                    del self.feeds[execution_id]
                if not feed.task.done():
                    feed.task.cancel()


__all__ = ["Hub"]
