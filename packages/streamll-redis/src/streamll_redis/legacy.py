"""The sink for streams that streamll 0.1 consumers still read (``streamll.RedisSink`` of 0.1).

:class:`LegacyRedisSink` writes 0.1's FastStream ``__data__`` envelope next to the
v1 ``data`` field, so 0.1 and current consumers read the same stream. The 0.1
entry layout itself (reading and writing ``__data__``) is in
:mod:`streamll_redis.v01_layout`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from redis.typing import EncodableT, FieldT
from streamll.core.events import Event
from streamll.errors import ConfigurationError
from streamll.sinks.results import BatchResult

from streamll_redis.entries import entry_fields
from streamll_redis.sink import RedisSink
from streamll_redis.v01_layout import BINARY_MAGIC, LEGACY_DATA_FIELD, legacy_body, legacy_envelope

V01_DEFAULT_URL = "redis://localhost:6379"
V01_DEFAULT_STREAM = "streamll_events"
_V01_CONNECTION_KWARGS = {"db", "username", "password", "socket_timeout", "socket_connect_timeout", "client_name"}
_SINK_KWARGS = {
    "stream",
    "maxlen",
    "approximate",
    "name",
    "buffer_size",
    "batch_size",
    "linger",
    "overflow",
    "block_timeout",
    "spill_path",
}


class LegacyRedisSink(RedisSink):
    """``streamll.sinks.RedisSink``: 0.1's ``RedisSink(redis_url=..., stream_key=..., **broker_kwargs)``.

    A :class:`~streamll_redis.RedisSink` that keeps 0.1's defaults (stream
    ``streamll_events``) and, with ``legacy_layout=True`` (the default),
    writes each entry in both layouts: the v1 ``data`` field and 0.1's
    ``__data__``, so consumers of either version read every event during an
    upgrade. Connection keywords 0.1 passed to FastStream (``db``,
    ``password``, ``username``, socket timeouts, ``client_name``) are
    applied; others raise :class:`~streamll.errors.ConfigurationError`.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        stream_key: str | None = None,
        *,
        legacy_layout: bool = True,
        **broker_kwargs: Any,
    ) -> None:
        """Take 0.1's arguments (URL, stream key, FastStream connection keywords) and map them onto ``RedisSink``."""
        url = redis_url or V01_DEFAULT_URL
        unknown = sorted(set(broker_kwargs) - _V01_CONNECTION_KWARGS - _SINK_KWARGS)
        if unknown:
            raise ConfigurationError(
                f"RedisSink: {', '.join(unknown)} not supported (0.1 passed these to FastStream); put connection "
                f"options in the URL, e.g. from streamll_redis import RedisSink; "
                f"RedisSink('redis://:PASSWORD@localhost:6379/0?stream={stream_key or V01_DEFAULT_STREAM}')"
            )
        connection = {key: broker_kwargs.pop(key) for key in list(broker_kwargs) if key in _V01_CONNECTION_KWARGS}
        stream = broker_kwargs.pop("stream", None) or stream_key
        if stream is None and "stream" not in parse_qs(urlsplit(url).query):
            stream = V01_DEFAULT_STREAM
        super().__init__(url, stream=stream, **broker_kwargs)
        if connection:
            self.options = self.options.replace(**connection)
        self.legacy_layout = legacy_layout

    @property
    def stream_key(self) -> str:
        """0.1's name for :attr:`stream`."""
        return self.stream

    def entry_fields(self, event: Event) -> dict[FieldT, EncodableT]:
        """The v1 fields, plus 0.1's ``__data__`` when ``legacy_layout`` is on."""
        fields = entry_fields(event)
        if self.legacy_layout:
            fields[LEGACY_DATA_FIELD] = legacy_envelope(event)
        return fields

    def encode(self, event: Event) -> Any:
        """An event as this sink writes it: its entry fields, built once (a retried batch is not encoded again)."""
        return self.entry_fields(event)

    async def write_batch(self, records: list[Any]) -> BatchResult:
        """``XADD`` each record (an event, or fields from :meth:`encode`) in order as one pipeline."""
        client = self._client
        if client is None:
            raise ConnectionError("redis sink is not connected")
        pipe = client.pipeline(transaction=False)
        rejected: list[str] = []
        for record in records:
            try:
                fields = self.entry_fields(record) if isinstance(record, Event) else record
            except Exception as exc:  # a broken event object fails alone
                rejected.append(f"cannot encode event {getattr(record, 'event_id', '?')}: {exc}")
                continue
            pipe.xadd(
                self.options.stream, fields, maxlen=self.options.maxlen or None, approximate=self.options.approximate
            )
        if len(pipe):
            await pipe.execute()
        return BatchResult.of(len(records) - len(rejected), rejected)


__all__ = [
    "BINARY_MAGIC",
    "LEGACY_DATA_FIELD",
    "V01_DEFAULT_STREAM",
    "LegacyRedisSink",
    "legacy_body",
    "legacy_envelope",
]
