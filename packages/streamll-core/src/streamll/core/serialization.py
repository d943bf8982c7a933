"""The one JSON encoding of events used by every transport."""

from __future__ import annotations

import json
from typing import Any

from streamll.core import codec
from streamll.core.events import EVENT_CLASSES, Event

__all__ = ["decode_event", "encode_event", "event_to_dict"]


def encode_event(event: Event) -> bytes:
    """Wire-format JSON bytes for ``event``; values JSON cannot hold are written as text."""
    return codec.encode(event)


def event_to_dict(event: Event) -> dict[str, Any]:
    """The event as the JSON-compatible dict that :func:`encode_event` writes."""
    return json.loads(codec.encode(event))


def decode_event(payload: bytes | str | dict[str, Any]) -> Event:
    """Decode a wire-format body into its event class.

    Raises :class:`~streamll.errors.MalformedEventError` for anything that is
    not a JSON object of the right shape; unknown fields are ignored so newer
    v1 producers stay readable.
    """
    return codec.decode(payload, EVENT_CLASSES, Event)
