"""Reading one execution's events back from a broker, by execution id (what the web relay serves).

A transport plugin registers an :class:`ExecutionLog` per URL scheme
(``streamll_register_execution_logs``). An execution log reads only the
events of the execution asked for (a Redis stream key or a NATS subject per
execution), so serving one execution never scans the others, and it keeps no
state of its own: any number of relay replicas read the same broker.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from streamll.plugins import create_execution_log

END_TYPES = frozenset({"end", "error"})
"""Event types that close a span; the one without a ``parent_id`` closes the execution."""


@dataclass(frozen=True)
class ExecutionSummary:
    """One execution as the live page lists it."""

    execution_id: str
    events: int
    """Events stored for it (including duplicates a retried write left)."""
    last_event_type: str | None
    finished: bool
    """True once its outermost end or error event is stored."""
    updated: float | None = None
    """Unix time of its last stored event, when the broker says."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "execution_id": self.execution_id,
            "events": self.events,
            "last_event_type": self.last_event_type,
            "finished": self.finished,
            "updated": self.updated,
        }


class StoredEvent:
    """An event body as stored, with the few fields the relay needs read once."""

    __slots__ = ("_sse", "body", "fields")

    def __init__(self, body: bytes, fields: dict[str, Any]) -> None:
        """One stored event: its wire body and the transport's fields next to it."""
        self.body = body
        self.fields = fields
        self._sse: bytes | None = None

    @property
    def sequence(self) -> int:
        """The event's ``sequence`` within its execution."""
        value = self.fields.get("sequence")
        return value if isinstance(value, int) else -1

    @property
    def event_type(self) -> str:
        """The event's ``event_type``."""
        return str(self.fields.get("event_type") or "")

    @property
    def closes_execution(self) -> bool:
        """True for the outermost end / error event: nothing of this execution follows it."""
        return self.event_type in END_TYPES and self.fields.get("parent_id") is None

    def sse(self) -> bytes:
        """The event as one SSE message (``id:`` = sequence, ``data:`` = the body), encoded once and shared."""
        if self._sse is None:
            body = self.body if b"\n" not in self.body else json.dumps(self.fields, separators=(",", ":")).encode()
            self._sse = b"id: %d\ndata: %s\n\n" % (self.sequence, body)
        return self._sse

    @classmethod
    def parse(cls, body: bytes) -> StoredEvent | None:
        """The stored event, or None when ``body`` is not a JSON object."""
        try:
            fields = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
        return cls(body, fields) if isinstance(fields, dict) else None


class ExecutionLog:
    """Per-execution reads from one broker URL; subclass per transport.

    :meth:`bodies` yields the stored wire-format bodies of one execution in
    the order they were stored, then waits for more (forever: the caller
    stops iterating). A retried write can store an event twice; the relay
    de-duplicates by ``sequence``.
    """

    async def open(self) -> None:
        """Connect (idempotent)."""

    async def aclose(self) -> None:
        """Disconnect."""

    def bodies(self, execution_id: str) -> AsyncIterator[bytes]:
        """Every stored body of ``execution_id`` from its first, then new ones as they arrive."""
        raise NotImplementedError

    async def recent(self, limit: int = 50) -> list[ExecutionSummary]:
        """The most recently active executions, newest first."""
        return []

    async def request_cancel(self, execution_id: str) -> int:
        """Ask the producer of ``execution_id`` to stop; returns how many producers heard it."""
        raise NotImplementedError(f"{type(self).__name__} cannot carry cancellation")

    async def watch_cancel(self, execution_id: str, on_cancel: Callable[[], None]) -> None:
        """(Producer side) call ``on_cancel`` when a cancellation request for ``execution_id`` arrives."""
        raise NotImplementedError(f"{type(self).__name__} cannot carry cancellation")

    async def unwatch_cancel(self, execution_id: str) -> None:
        """(Producer side) stop listening for ``execution_id``."""

    async def __aenter__(self) -> ExecutionLog:
        """Open the log."""
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the log."""
        await self.aclose()


def open_execution_log(url: str) -> ExecutionLog:
    """The execution log for a transport URL (not yet opened); raises for a scheme no plugin serves."""
    log = create_execution_log(url)
    if not isinstance(log, ExecutionLog):
        raise TypeError(f"the execution log registered for {url.split(':', 1)[0]!r} is not an ExecutionLog")
    return log


async def acancel(execution_id: str, url: str) -> bool:
    """Ask the producer of ``execution_id`` to stop, through the broker at ``url``; False when nobody listened."""
    async with open_execution_log(url) as log:
        return await log.request_cancel(execution_id) > 0


def cancel(execution_id: str, url: str) -> bool:
    """:func:`acancel` for synchronous code (not inside a running event loop: await ``acancel`` there)."""
    return asyncio.run(acancel(execution_id, url))


__all__ = ["END_TYPES", "ExecutionLog", "ExecutionSummary", "StoredEvent", "acancel", "cancel", "open_execution_log"]
