"""The one JSON encoding of events used by every transport."""

from __future__ import annotations

import json
from typing import Any

from streamll.core import codec
from streamll.core.events import EVENT_CLASSES, Event
from streamll.core.records import TokenRecord

__all__ = ["decode_event", "encode_event", "event_to_dict"]


def encode_event(event: Event | TokenRecord) -> bytes:
    """Wire-format JSON bytes for ``event``; values JSON cannot hold are written as text.

    A token record is encoded without building its model when it can be.
    """
    if isinstance(event, TokenRecord):
        body = event.fast_body()
        if body is not None:
            return body
        event = event.event()
    return codec.encode(event)


def event_to_dict(event: Event | TokenRecord) -> dict[str, Any]:
    """The event as the JSON-compatible dict that :func:`encode_event` writes."""
    return json.loads(encode_event(event))


def decode_event(payload: bytes | str | dict[str, Any]) -> Event:
    """Decode a wire-format body into its event class.

    Raises :class:`~streamll.errors.MalformedEventError` for anything that is
    not a JSON object of the right shape; unknown fields are ignored so newer
    v1 producers stay readable.
    """
    return codec.decode(payload, EVENT_CLASSES, Event)
