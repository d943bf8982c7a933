"""RedisSink: events to a Redis Stream, batched and pipelined on streamll's background worker."""

from __future__ import annotations

import logging
from typing import Any, Unpack

import redis.asyncio as aioredis
from streamll.core.events import Event
from streamll.sinks.base import BaseSink
from streamll.sinks.results import BatchResult
from streamll.url_options import SinkOptions, sink_arguments

from streamll_redis.client import close_client, make_client
from streamll_redis.entries import DATA_FIELD, EXECUTION_ID_FIELD, entry_fields
from streamll_redis.executions import add_execution_writes
from streamll_redis.url import DEFAULT_URL, RedisOptions, parse_redis_url

logger = logging.getLogger("streamll.redis")


class RedisSink(BaseSink):
    """Appends every event to one Redis Stream with ``XADD`` (see ``streamll_redis.entries`` for the layout).

    ``emit`` only buffers; the shared background worker writes each batch as
    one non-transactional pipeline of ``XADD key MAXLEN ~ N * data ...``
    commands, so the program never waits on Redis. An idle sink writes an
    event at once; events arriving during a write form the next pipeline. When Redis is unreachable
    the batch is kept and retried with backoff after a reconnect; the buffer's
    overflow policy bounds memory meanwhile. Delivery is at least once: a
    pipeline cut off mid-way is written again whole, so a consumer may see an
    ``event_id`` twice.

    Options come from the URL (``redis://host:6379/0?stream=KEY&maxlen=N``,
    see ``streamll_redis.url``); keyword arguments given here win over it.
    With ``?per_execution=true`` each event is also appended to its
    execution's own key, for the web relay (see ``streamll_redis.executions``).
    ``sink_options`` are ``BaseSink``'s (``buffer_size``, ``overflow``, ...).
    """

    batch_size = 500
    encodes_records = True

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        stream: str | None = None,
        maxlen: int | None = None,
        approximate: bool | None = None,
        **sink_options: Unpack[SinkOptions],
    ) -> None:
        """Options from ``url``, keywords overriding its stream settings; nothing connects until the first batch."""
        options = parse_redis_url(url)
        changes = {"stream": stream, "maxlen": maxlen, "approximate": approximate}
        options = options.replace(**{key: value for key, value in changes.items() if value is not None})
        default_name = f"redis:{options.stream}@{options.location}/{options.db}"
        super().__init__(**sink_arguments(options.sink_options, sink_options, default_name=default_name))
        self.options: RedisOptions = options
        self._client: aioredis.Redis | None = None
        self._url = url if stream is None else None

    @classmethod
    def from_url(cls, url: str) -> RedisSink:
        """The sink a ``redis://``, ``rediss://`` or ``unix://`` URL describes (the plugin's factory)."""
        return cls(url)

    @property
    def stream(self) -> str:
        """The stream key events are appended to."""
        return self.options.stream

    @property
    def execution_log_url(self) -> str | None:
        """The URL a relay (and cancellation) reads this sink's executions by, with ``per_execution=true``."""
        return self._url if self.options.per_execution else None

    @property
    def maxlen(self) -> int:
        """The (approximate) length the stream is trimmed to; 0 means no trimming."""
        return self.options.maxlen

    async def open(self) -> None:
        """Connect and check the server answers (so an outage is seen here, not as a failed write)."""
        client = make_client(self.options)
        try:
            await client.ping()
        except BaseException:
            await close_client(client)
            raise
        self._client = client

    async def aclose(self) -> None:
        """Close the connection pool."""
        client, self._client = self._client, None
        await close_client(client)

    def encode(self, event: Event) -> dict[Any, Any]:
        """The entry fields ``data``, ``event_type``, ``execution_id`` (raises for text UTF-8 cannot hold)."""
        return entry_fields(event)

    def record_body(self, record: Any) -> bytes:
        """The entry's ``data`` field: the v1 JSON event."""
        return record[DATA_FIELD]  # type: ignore[no-any-return]

    async def write_batch(self, records: list[Any]) -> BatchResult:
        """Write the encoded entries in order as one pipeline; raises on any error so the batch is retried."""
        client = self._client
        if client is None:
            raise ConnectionError("redis sink is not connected")
        stream = self.options.stream
        maxlen = self.options.maxlen or None
        approximate = self.options.approximate
        pipe = client.pipeline(transaction=False)
        per_execution: list[tuple[Any, Any]] | None = [] if self.options.per_execution else None
        for fields in records:
            pipe.xadd(stream, fields, maxlen=maxlen, approximate=approximate)
            if per_execution is not None:
                per_execution.append((fields[EXECUTION_ID_FIELD], fields))
        if per_execution:
            add_execution_writes(pipe, self.options, per_execution)
        if len(pipe):
            await pipe.execute()
        return BatchResult(len(records))

    def __repr__(self) -> str:
        """URL without credentials and whether the sink is running."""
        return f"<RedisSink {self.options.display_url!r} running={self.is_running}>"


__all__ = ["RedisSink"]
