"""RedisStreamConsumer: read streamll events back from a Redis Stream, alone or in a consumer group."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from streamll.backoff import Backoff
from streamll.consumer import BaseConsumer, Received
from streamll.core.events import Event
from streamll.errors import ConfigurationError, ConsumerError

from streamll_redis.client import CONNECTION_ERRORS, close_client, make_client
from streamll_redis.entries import Entry, entry_body, read_reply_entries
from streamll_redis.url import RedisOptions, parse_redis_url

logger = logging.getLogger("streamll.redis")

DEFAULT_CONSUMER_URL = "redis://localhost:6379"
_BEGINNING = "0-0"


def default_consumer_name() -> str:
    """This host's name: stable across restarts, so a restarted consumer gets its pending entries back."""
    return socket.gethostname() or "streamll"


class RedisStreamConsumer(BaseConsumer[str]):
    """Reads events from a Redis Stream; the message handle is the entry id.

    Without ``group`` it reads with ``XREAD``: only entries added after
    :meth:`start` (or the whole stream with ``from_beginning=True``), resuming
    after the last entry it returned when the connection comes back or it is
    started again.

    With ``group`` it reads with ``XREADGROUP`` as ``consumer`` (default: the
    host name). The group is created if missing (with ``MKSTREAM``; at the
    start of the stream with ``from_beginning=True``, else at its end). On start
    it first re-reads this consumer's own pending entries (delivered before, not
    acknowledged), then new ones. :meth:`ack` sends ``XACK``.

    Entries that are not streamll events are logged, counted in
    ``stats.malformed``, acknowledged and skipped. Connection loss is waited
    out with backoff (counted in ``stats.reconnects``); ``start()`` itself
    raises if Redis cannot be reached.
    """

    count: int = 100
    """Most entries fetched per read (in a group they are pending on this consumer until acked)."""
    max_block: float = 1.0
    """Longest single blocking read in seconds, so :meth:`stop` is noticed promptly."""
    retry_backoff: float = 0.1
    retry_backoff_max: float = 5.0
    ack_timeout: float = 5.0
    """Longest :meth:`ack` waits for Redis (reconnecting included) before it raises; the entry stays pending."""

    def __init__(
        self,
        url: str = DEFAULT_CONSUMER_URL,
        *,
        stream: str | None = None,
        group: str | None = None,
        consumer: str | None = None,
        from_beginning: bool | None = None,
        event_types: Iterable[str] | str | None = None,
        execution_id: str | None = None,
        count: int | None = None,
        ack_timeout: float | None = None,
    ) -> None:
        """Read the stream of ``url`` (or ``stream``); keywords override the URL's options; connects on ``start()``."""
        super().__init__(event_types=event_types, execution_id=execution_id)
        if ack_timeout is not None:
            if not ack_timeout > 0:
                raise ConfigurationError(f"ack_timeout must be a number of seconds > 0, got {ack_timeout!r}")
            self.ack_timeout = float(ack_timeout)
        options = parse_redis_url(url)
        if stream is not None:
            options = options.replace(stream=stream)
        self.options: RedisOptions = options
        self.stream: str = options.stream
        self.group: str | None = group if group is not None else options.group
        if consumer is None:
            consumer = options.consumer
        if consumer is not None and self.group is None:
            raise ConfigurationError("a consumer name only applies to a consumer group: pass group= as well")
        self.consumer: str = consumer or default_consumer_name()
        if from_beginning is None:
            from_beginning = options.from_beginning
        self.from_beginning: bool = bool(from_beginning)
        count = count if count is not None else options.count
        if count is not None:
            if count < 1:
                raise ConfigurationError(f"count must be >= 1, got {count}")
            self.count = count
        self._client: aioredis.Redis | None = None
        self._buffer: deque[Entry] = deque()
        self._position: str | None = None
        """Without a group: the id the next XREAD reads after. In a group: where a lost group is re-created."""
        self._start_position: str | None = None
        self._delivered: str | None = None
        """Id of the last entry handed out (a restart without a group resumes after it)."""
        self._pending_from: str | None = "0"
        """In a group: read this consumer's pending entries after this id before reading new ones."""
        self._failures = 0
        self._next_attempt = 0.0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStreamConsumer:
        """A consumer for ``url`` (the plugin's factory); keyword options as for the constructor."""
        return cls(url, **options)

    @property
    def position(self) -> str | None:
        """Id of the last entry this consumer returned (or skipped), ``None`` before the first."""
        return self._delivered

    async def consume_one(self, timeout: float | None = None) -> Event | None:
        """The next event that passes the filters, or ``None`` after ``timeout`` seconds (see BaseConsumer)."""
        event = await super().consume_one(timeout)
        if event is not None and self.group is None:
            # Nothing to acknowledge without a group: keep no handle, so a long-running reader stays small.
            self._handles.pop(event.event_id, None)
        return event

    async def ack(self, event: Event) -> None:
        """``XACK`` the entry ``event`` came from (in a group); without a group there is nothing to acknowledge."""
        if self.group is None:
            self.stats.acked += 1
            return
        await super().ack(event)

    # ------------------------------------------------------------------ connection

    async def _connect(self) -> None:
        await self._open()

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        await close_client(client)
        if self._buffer:
            self._buffer.clear()
            self._position = self._delivered or self._start_position
        self._pending_from = "0"
        self._failures = 0

    async def _open(self) -> None:
        """Connect, position the reader (first time) and make sure the group exists."""
        client = make_client(self.options)
        try:
            if self._position is None:
                self._position = _BEGINNING if self.from_beginning else await self._last_entry_id(client)
                self._start_position = self._position
            if self.group is not None:
                await self._create_group(client, self._position)
            else:
                await client.ping()
        except BaseException:
            await close_client(client)
            raise
        self._client = client

    async def _last_entry_id(self, client: aioredis.Redis) -> str:
        newest = await client.xrevrange(self.stream, count=1)
        if not newest:
            return _BEGINNING
        return cast(bytes, newest[0][0]).decode("ascii")  # the client is built with decode_responses=False

    async def _create_group(self, client: aioredis.Redis, start_id: str) -> None:
        assert self.group is not None
        try:
            await client.xgroup_create(self.stream, self.group, id=start_id, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _connection_lost(self, exc: BaseException) -> None:
        """Forget the broken client and schedule a reconnect with backoff."""
        client, self._client = self._client, None
        await close_client(client)
        if self.group is not None and self._pending_from is None:
            # Entries the server handed out but we never received are in our pending list after this id.
            self._pending_from = self._position or "0"
        self._failures += 1
        delay = Backoff(self.retry_backoff, self.retry_backoff_max).delay(self._failures)
        self._next_attempt = time.monotonic() + delay
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        if self._failures == 1:
            logger.warning(
                "streamll consumer %s: lost the connection (%s: %s); reconnecting with backoff",
                self.options.display_url,
                type(exc).__name__,
                exc,
            )

    async def _reconnect(self, deadline: float | None) -> bool:
        """Wait out the backoff (not past ``deadline``), then try once; True when connected."""
        wait = self._next_attempt - time.monotonic()
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
        await asyncio.sleep(wait)  # returns at once for a wait <= 0
        if time.monotonic() < self._next_attempt or not self.is_started:
            return False
        try:
            await self._open()
        except CONNECTION_ERRORS as exc:
            await self._connection_lost(exc)
            return False
        self._failures = 0
        self.stats.reconnects += 1
        logger.info("streamll consumer %s: reconnected", self.options.display_url)
        return True

    # ------------------------------------------------------------------ reading

    async def _receive(self, timeout: float | None) -> Received[str] | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            while self._buffer:
                entry_id, fields = self._buffer.popleft()
                self._delivered = entry_id
                body = entry_body(fields)
                if body is not None:
                    return Received(body=body, handle=entry_id)
                await self._skip_entry(entry_id, fields)
            if not self.is_started:
                return None
            if self._client is None and not await self._reconnect(deadline):
                return None
            remaining = None if deadline is None else deadline - time.monotonic()
            if not await self._fill(remaining):
                return None

    def _block_ms(self, timeout: float | None) -> int | None:
        """BLOCK argument for one read: at most ``max_block`` and below the socket timeout; None: don't block."""
        seconds = self.max_block if timeout is None else min(timeout, self.max_block)
        if self.options.socket_timeout:
            seconds = min(seconds, self.options.socket_timeout / 2)
        milliseconds = int(seconds * 1000)
        return milliseconds if milliseconds > 0 else None

    async def _fill(self, timeout: float | None) -> bool:
        """One read into the buffer; False when nothing arrived (timeout or a lost connection)."""
        client = self._client
        assert client is not None
        try:
            entries = await self._read(client, self._block_ms(timeout))
        except ResponseError as exc:
            if self.group is None or "NOGROUP" not in str(exc):
                raise
            logger.warning(
                "streamll consumer %s: group %r vanished; re-creating it", self.options.display_url, self.group
            )
            await self._create_group(client, self._position or _BEGINNING)
            self._pending_from = None
            return True
        except CONNECTION_ERRORS as exc:
            if self.is_started:
                await self._connection_lost(exc)
            return False
        except Exception:
            if not self.is_started:  # stop() closed the client under a read
                return False
            raise
        if entries:
            self._position = later_id(self._position, entries[-1][0])
            self._buffer.extend(entries)
        return bool(entries)

    async def _read(self, client: aioredis.Redis, block: int | None) -> list[Entry]:
        reply: Any
        if self.group is None:
            assert self._position is not None
            reply = await client.xread({self.stream: self._position}, count=self.count, block=block)
            return read_reply_entries(reply)
        if self._pending_from is not None:
            reply = await client.xreadgroup(
                self.group, self.consumer, {self.stream: self._pending_from}, count=self.count
            )
            entries = read_reply_entries(reply)
            if entries:
                self._pending_from = entries[-1][0]
                return entries
            self._pending_from = None
        reply = await client.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=self.count, block=block)
        return read_reply_entries(reply)

    async def _skip_entry(self, entry_id: str, fields: Any) -> None:
        reason = (
            f"entry {entry_id} was deleted from the stream before it was acknowledged"
            if not fields
            else f"entry {entry_id} has no 'data' field (fields: {', '.join(sorted(map(_name, fields)))})"
        )
        self.stats.malformed += 1
        self.stats.last_error = reason
        logger.warning("streamll consumer %s: skipped a malformed entry: %s", self.options.display_url, reason)
        await self._ack_quietly(entry_id)

    # ------------------------------------------------------------------ acknowledging

    async def _ack_message(self, handle: str) -> None:
        """``XACK`` in a group, riding out a short connection loss; nothing to do without one.

        Raises :class:`~streamll.errors.ConsumerError` after ``ack_timeout`` seconds without Redis:
        the entry stays pending on this consumer and is delivered again when it restarts.
        """
        if self.group is None:
            return
        deadline = time.monotonic() + self.ack_timeout
        while True:
            if not self.is_started:
                raise ConsumerError(f"cannot ack entry {handle}: the consumer is stopped (it stays pending)")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConsumerError(
                    f"cannot ack entry {handle}: {self.options.display_url} did not answer within "
                    f"{self.ack_timeout:g}s ({self.stats.last_error}); it stays pending and is delivered again"
                )
            client = self._client
            if client is None:
                try:  # a server that accepts the connection but never answers must not hold the ack either
                    await asyncio.wait_for(self._reconnect(deadline), remaining)
                except TimeoutError as exc:
                    await self._connection_lost(exc)
                continue
            try:
                await asyncio.wait_for(client.xack(self.stream, self.group, handle), remaining)
                return
            except CONNECTION_ERRORS as exc:  # TimeoutError included (an OSError)
                await self._connection_lost(exc)

    def __repr__(self) -> str:
        """The URL (no secrets), the group and consumer, and whether it is started."""
        group = f" group={self.group!r} consumer={self.consumer!r}" if self.group else ""
        return f"<RedisStreamConsumer {self.options.display_url!r}{group} started={self.is_started}>"


def stream_id_key(entry_id: str) -> tuple[int, int]:
    """``"1700000000000-3"`` -> ``(1700000000000, 3)``, for comparing entry ids."""
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


def later_id(current: str | None, candidate: str) -> str:
    """The later of two entry ids (``candidate`` when there is no ``current``)."""
    if current is None or stream_id_key(candidate) > stream_id_key(current):
        return candidate
    return current


def _name(key: bytes) -> str:
    return key.decode("utf-8", "replace")


__all__ = ["DEFAULT_CONSUMER_URL", "RedisStreamConsumer", "default_consumer_name", "later_id", "stream_id_key"]
