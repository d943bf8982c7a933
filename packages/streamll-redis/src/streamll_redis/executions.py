"""Per-execution keys on Redis: what the sink writes with ``?per_execution=true`` and what the web relay reads.

With ``per_execution=true`` the sink appends every event twice: to the shared
stream (as always) and to the execution's own stream ``<stream>:exec:<id>``,
whose TTL (``execution_ttl``, default one day) is renewed on each write, so a
finished execution disappears by itself. A sorted set ``<stream>:executions``
(score: time of the last write) lists the executions for the live page and is
trimmed to the same TTL. Reading one execution is ``XREAD`` on its own key: no
other execution's events are touched.

Cancellation travels on the pub/sub channel ``<stream>:cancel:<execution_id>``,
which the producer subscribes to while the execution runs: ``PUBLISH`` says how
many producers heard the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT
from streamll.executions import ExecutionLog, ExecutionSummary, StoredEvent

from streamll_redis.client import CONNECTION_ERRORS, close_client, make_client
from streamll_redis.entries import entry_body, read_reply_entries
from streamll_redis.url import RedisOptions, parse_redis_url

logger = logging.getLogger("streamll.redis")


def execution_key(stream: str, execution_id: str) -> str:
    """The stream key holding one execution's events."""
    return f"{stream}:exec:{execution_id}"


def index_key(stream: str) -> str:
    """The sorted set of recent executions (score: unix time of their last write)."""
    return f"{stream}:executions"


def cancel_channel(stream: str, execution_id: str) -> str:
    """The pub/sub channel cancellation requests for one execution travel on (its producer subscribes)."""
    return f"{stream}:cancel:{execution_id}"


def add_execution_writes(
    pipe: Any, options: RedisOptions, written: Iterable[tuple[str | bytes, dict[FieldT, EncodableT]]]
) -> None:
    """Queue on ``pipe`` the per-execution copies of a batch: ``XADD`` per event, TTL and index per execution.

    ``written`` pairs each event's execution id (text or UTF-8 bytes) with the entry fields written to the
    shared stream.
    """
    ttl = max(1, int(options.execution_ttl))
    maxlen = options.maxlen or None
    seen: set[str] = set()
    for raw_id, fields in written:
        execution_id = raw_id.decode("utf-8", "replace") if isinstance(raw_id, bytes) else raw_id
        if not execution_id:
            continue
        pipe.xadd(execution_key(options.stream, execution_id), fields, maxlen=maxlen, approximate=True)
        seen.add(execution_id)
    if not seen:
        return
    now = time.time()
    index = index_key(options.stream)
    for execution_id in seen:
        pipe.expire(execution_key(options.stream, execution_id), ttl)
    pipe.zadd(index, dict.fromkeys(seen, now))
    pipe.zremrangebyscore(index, "-inf", now - ttl)
    pipe.expire(index, ttl)


class RedisExecutionLog(ExecutionLog):
    """Reads one execution from its own stream key (see the module docstring)."""

    block_ms: int = 1000
    """Longest single blocking read, so a stopped reader is noticed promptly."""
    count: int = 500

    def __init__(self, url: str) -> None:
        """Parse ``url``; nothing connects until :meth:`open`."""
        self.options = parse_redis_url(url)
        self._client: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._watched: dict[str, Callable[[], None]] = {}

    @classmethod
    def from_url(cls, url: str) -> RedisExecutionLog:
        """The log a ``redis://`` URL describes (the plugin's factory)."""
        return cls(url)

    def _require(self) -> aioredis.Redis:
        if self._client is None:
            self._client = make_client(self.options.replace(socket_timeout=0))
        return self._client

    async def open(self) -> None:
        """Connect and check the server answers."""
        await self._require().ping()

    async def aclose(self) -> None:
        """Close the connection pool (and the cancel subscription, if any)."""
        client, self._client = self._client, None
        await close_client(client)
        pubsub, self._pubsub = self._pubsub, None
        if self._listener is not None:
            self._listener.cancel()
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def bodies(self, execution_id: str) -> AsyncIterator[bytes]:
        """Bodies of the execution's key from its start, then new ones (blocking ``XREAD``); waits out outages."""
        key = execution_key(self.options.stream, execution_id)
        position = "0-0"
        backoff = 0.1
        while True:
            try:
                reply = await self._require().xread({key: position}, count=self.count, block=self.block_ms)
            except CONNECTION_ERRORS as exc:
                logger.debug("streamll web: redis read failed (%s); retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.1
            for entry_id, fields in read_reply_entries(reply):
                position = entry_id
                body = entry_body(fields)
                if body is not None:
                    yield body

    async def recent(self, limit: int = 50) -> list[ExecutionSummary]:
        """The executions written to most recently, with their last event."""
        client = self._require()
        index = index_key(self.options.stream)
        members = await client.zrevrange(index, 0, max(0, limit - 1), withscores=True)
        pipe = client.pipeline(transaction=False)
        names = [entry[0] for entry in members]  # (member, score) pairs
        ids = [name.decode() if isinstance(name, bytes) else str(name) for name in names]
        for execution_id in ids:
            key = execution_key(self.options.stream, execution_id)
            pipe.xlen(key)
            pipe.xrevrange(key, count=1)
        replies = await pipe.execute() if ids else []
        summaries = []
        for position, execution_id in enumerate(ids):
            length, last = replies[2 * position], replies[2 * position + 1]
            if not length:
                continue
            stored = StoredEvent.parse(entry_body(last[0][1]) or b"") if last else None
            summaries.append(
                ExecutionSummary(
                    execution_id,
                    int(length),
                    stored.event_type if stored else None,
                    bool(stored and stored.closes_execution),
                    float(members[position][1]),
                )
            )
        return summaries

    async def request_cancel(self, execution_id: str) -> int:
        """Publish the request on the execution's cancel channel; returns how many producers listened."""
        return int(await self._require().publish(cancel_channel(self.options.stream, execution_id), b"cancel"))

    async def watch_cancel(self, execution_id: str, on_cancel: Callable[[], None]) -> None:
        """Subscribe to the execution's cancel channel (one pub/sub connection for all watched executions)."""
        self._watched[execution_id] = on_cancel
        if self._pubsub is None:
            self._pubsub = make_client(self.options.replace(socket_timeout=0)).pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(cancel_channel(self.options.stream, execution_id))
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen())

    async def unwatch_cancel(self, execution_id: str) -> None:
        """Unsubscribe from the execution's cancel channel."""
        if self._watched.pop(execution_id, None) is not None and self._pubsub is not None:
            with contextlib.suppress(*CONNECTION_ERRORS):
                await self._pubsub.unsubscribe(cancel_channel(self.options.stream, execution_id))

    async def _listen(self) -> None:
        prefix = len(cancel_channel(self.options.stream, ""))
        while self._pubsub is not None:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except CONNECTION_ERRORS as exc:
                logger.debug("streamll: redis cancel subscription lost (%s); resubscribing", exc)
                await asyncio.sleep(0.5)
                with contextlib.suppress(*CONNECTION_ERRORS):
                    for execution_id in list(self._watched):
                        await self._pubsub.subscribe(cancel_channel(self.options.stream, execution_id))
                continue
            if not message or message.get("type") != "message":
                if not self._pubsub.subscribed:
                    await asyncio.sleep(0.2)
                continue
            channel = message.get("channel")
            channel = channel.decode() if isinstance(channel, bytes) else str(channel)
            callback = self._watched.get(channel[prefix:])
            if callback is not None:
                callback()


__all__ = [
    "RedisExecutionLog",
    "add_execution_writes",
    "cancel_channel",
    "execution_key",
    "index_key",
]
