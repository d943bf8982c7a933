"""The layout of one streamll event as a Redis Stream entry, and reading entries back.

Every entry has three fields:

* ``data``: the event's wire-format JSON body (``streamll.core.serialization.encode_event``),
  the only field a consumer needs;
* ``event_type`` and ``execution_id``: copies of two body fields, so
  ``XRANGE`` / ``redis-cli`` users can inspect a stream without parsing JSON.

Entries written by streamll 0.1 (one ``__data__`` field, see
``streamll_redis.v01_layout``) are read too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.typing import EncodableT, FieldT
from streamll.core.events import Event
from streamll.core.serialization import encode_event

from streamll_redis.v01_layout import legacy_body

DATA_FIELD = "data"
EVENT_TYPE_FIELD = "event_type"
EXECUTION_ID_FIELD = "execution_id"

Entry = tuple[str, Mapping[Any, Any]]
"""An entry id and its fields, as read from the stream."""

_DATA_KEYS = (DATA_FIELD.encode(), DATA_FIELD)
_LEGACY_KEYS = (b"__data__", "__data__")


def entry_fields(event: Event) -> dict[FieldT, EncodableT]:
    """The fields ``XADD`` writes for ``event``, as bytes (raises for text UTF-8 cannot hold, so it fails alone)."""
    return {
        DATA_FIELD: encode_event(event),
        EVENT_TYPE_FIELD: event.event_type.encode("utf-8"),
        EXECUTION_ID_FIELD: event.execution_id.encode("utf-8"),
    }


def entry_body(fields: Mapping[Any, Any]) -> bytes | None:
    """The JSON body of an entry, or None when it has no ``data`` (or 0.1 ``__data__``) field."""
    for key in _DATA_KEYS:
        value = fields.get(key)
        if value is not None:
            return value if isinstance(value, bytes) else str(value).encode("utf-8")
    for key in _LEGACY_KEYS:
        value = fields.get(key)
        if value is not None:
            return legacy_body(value)
    return None


def _text(value: Any) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def read_reply_entries(reply: Any) -> list[Entry]:
    """Entries of the one stream in an ``XREAD`` / ``XREADGROUP`` reply (RESP2 or RESP3 shape)."""
    if not reply:
        return []
    per_stream = list(reply.values()) if isinstance(reply, dict) else [item[1] for item in reply]
    entries: list[Entry] = []
    for stream_entries in per_stream:
        if stream_entries and isinstance(stream_entries[0], list):
            stream_entries = [entry for chunk in stream_entries for entry in chunk]
        for entry in stream_entries or ():
            entry_id, fields = entry[0], entry[1]
            if entry_id is None:
                continue
            entries.append((_text(entry_id), fields or {}))
    return entries


__all__ = [
    "DATA_FIELD",
    "EVENT_TYPE_FIELD",
    "EXECUTION_ID_FIELD",
    "Entry",
    "entry_body",
    "entry_fields",
    "read_reply_entries",
]
