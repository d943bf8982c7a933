"""Per-execution reads on NATS JetStream, for the web relay.

With ``?per_execution=true`` the sink publishes each event on
``<subject>.<execution_id>`` (the stream it creates captures ``<subject>.>``
and keeps messages ``max_age``, default one day). Reading one execution is an
ordered consumer filtered on that one subject: JetStream's subject index
serves it without delivering other executions' messages. The executions list
comes from the stream's per-subject counts.

Cancellation is a core NATS request on ``_STREAMLL.cancel.<subject>.<execution_id>``
(outside the stream's subjects, so it is not stored); the producer answers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import api
from nats.js.errors import NotFoundError
from streamll.executions import ExecutionLog, ExecutionSummary, StoredEvent

from streamll_nats.jetstream import close_quietly, connect
from streamll_nats.url import NatsOptions, parse_url

logger = logging.getLogger("streamll")

CANCEL_PREFIX = "_STREAMLL.cancel"


def cancel_subject(options: NatsOptions, execution_id: str) -> str:
    """Subject a cancellation request for ``execution_id`` travels on."""
    return f"{CANCEL_PREFIX}.{options.subject}.{execution_id}"


class NatsExecutionLog(ExecutionLog):
    """Reads one execution from its own subject (see the module docstring)."""

    def __init__(self, url: str) -> None:
        """Parse ``url``; nothing connects until :meth:`open`."""
        self.options = parse_url(url)
        self._nc: Client | None = None
        self._lock = asyncio.Lock()
        self._watched: dict[str, Any] = {}

    @classmethod
    def from_url(cls, url: str) -> NatsExecutionLog:
        """The log a ``nats://`` URL describes (the plugin's factory)."""
        return cls(url)

    async def _client(self) -> Client:
        async with self._lock:
            if self._nc is None or self._nc.is_closed:
                self._nc = await connect(
                    self.options, who="web relay", allow_reconnect=True, max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                )  # fmt: skip
            return self._nc

    async def open(self) -> None:
        """Connect."""
        await self._client()

    async def aclose(self) -> None:
        """Disconnect."""
        nc, self._nc = self._nc, None
        if nc is not None:
            await close_quietly(nc)

    def _subject(self, execution_id: str) -> str:
        return f"{self.options.subject}.{execution_id}"

    async def bodies(self, execution_id: str) -> AsyncIterator[bytes]:
        """Bodies on the execution's subject from the first, through an ordered consumer (recreated on loss)."""
        nc = await self._client()
        js = nc.jetstream()
        sub = await js.subscribe(
            self._subject(execution_id),
            stream=self.options.stream,
            ordered_consumer=True,
            deliver_policy=api.DeliverPolicy.ALL,
            idle_heartbeat=5.0,
        )
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=1.0)
                except NatsTimeoutError:
                    continue
                yield msg.data
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def recent(self, limit: int = 50) -> list[ExecutionSummary]:
        """Executions with messages in the stream, most recently written first (up to ``limit``)."""
        nc = await self._client()
        js = nc.jetstream()
        prefix = f"{self.options.subject}."
        try:
            info = await js.stream_info(self.options.stream, subjects_filter=f"{self.options.subject}.*")
        except NotFoundError:
            return []
        counts: dict[str, int] = dict(info.state.subjects or {})
        summaries: list[ExecutionSummary] = []
        for subject, count in counts.items():
            try:
                last = await js.get_last_msg(self.options.stream, subject)
            except NotFoundError:
                continue
            stored = StoredEvent.parse(last.data or b"")
            stored_at = getattr(last, "time", None)
            updated = stored_at.timestamp() if stored_at is not None else None
            summaries.append(
                ExecutionSummary(
                    subject[len(prefix) :],
                    int(count),
                    stored.event_type if stored else None,
                    bool(stored and stored.closes_execution),
                    updated,
                )
            )
        summaries.sort(key=lambda summary: summary.updated or 0.0, reverse=True)
        return summaries[:limit]

    async def request_cancel(self, execution_id: str) -> int:
        """Send the request; 1 when the producer answered, 0 when nobody listens."""
        nc = await self._client()
        try:
            await nc.request(cancel_subject(self.options, execution_id), execution_id.encode(), timeout=2.0)
        except (NoRespondersError, NatsTimeoutError):
            return 0
        return 1

    async def watch_cancel(self, execution_id: str, on_cancel: Callable[[], None]) -> None:
        """Answer requests on the execution's cancel subject (core NATS, not stored)."""
        nc = await self._client()

        async def handle(msg: Any) -> None:
            on_cancel()
            if msg.reply:
                await msg.respond(b"ok")

        await self.unwatch_cancel(execution_id)
        self._watched[execution_id] = await nc.subscribe(cancel_subject(self.options, execution_id), cb=handle)
        await nc.flush()

    async def unwatch_cancel(self, execution_id: str) -> None:
        """Drop the execution's cancel subscription."""
        sub = self._watched.pop(execution_id, None)
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()


__all__ = ["CANCEL_PREFIX", "NatsExecutionLog", "cancel_subject"]
