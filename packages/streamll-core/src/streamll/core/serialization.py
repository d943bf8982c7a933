"""The one JSON encoding of events used by every transport."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError, to_json

from streamll.core.events import EVENT_CLASSES, Event
from streamll.core.records import TokenRecord
from streamll.errors import MalformedEventError


def _repr(value: Any) -> str:
    """``repr(value)``, or a placeholder when ``__repr__`` itself raises."""
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not break the user's program
        return f"<unrepresentable {type(value).__name__}>"


def _as_text(value: Any) -> str:
    """Text standing in for a value that cannot be written as JSON at all."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return _repr(value)


def _fallback(value: Any) -> Any:
    """Encode what JSON cannot hold as text; never pickle, never raise."""
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return _as_text(value)


_UNWRITABLE = (PydanticSerializationError, ValueError, RecursionError)


def _writable(mapping: dict[str, Any]) -> dict[str, Any]:
    """``mapping`` with each value pydantic cannot write (bytes that are not UTF-8, cycles) replaced by text."""
    safe: dict[str, Any] = {}
    for key, value in mapping.items():
        try:
            to_json(value, fallback=_fallback)
            safe[key] = value
        except _UNWRITABLE:
            # the whole value becomes text: converting a container (a set of non-UTF-8 bytes, say)
            # to a list would still hold what cannot be written
            safe[key] = _as_text(value)
    return safe


def encode_event(event: Event | TokenRecord) -> bytes:
    """Wire-format JSON bytes for ``event`` (a token record is encoded without building its model when it can be)."""
    if type(event) is TokenRecord:
        body = event.fast_body()
        if body is not None:
            return body
        event = event.event()
    try:
        return event.model_dump_json(fallback=_fallback).encode("utf-8")
    except _UNWRITABLE:
        safe = event.model_copy(update={"data": _writable(event.data), "tags": _writable(event.tags)})
        return safe.model_dump_json(fallback=_fallback).encode("utf-8")


def event_to_dict(event: Event | TokenRecord) -> dict[str, Any]:
    """The event as the JSON-compatible dict that :func:`encode_event` writes."""
    return json.loads(encode_event(event))


def decode_event(payload: bytes | str | dict[str, Any]) -> Event:
    """Decode a wire-format body into its event class.

    Raises :class:`~streamll.errors.MalformedEventError` for anything that is
    not a JSON object of the right shape; unknown fields are ignored so newer
    v1 producers stay readable.
    """
    if isinstance(payload, dict):
        body = payload
    else:
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedEventError(f"not JSON: {exc}") from exc
        except RecursionError:  # b"[" * 100000: nested deeper than the parser can follow
            raise MalformedEventError("not JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise MalformedEventError(f"expected a JSON object, got {type(body).__name__}")
    event_type = body.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEventError("missing non-empty string field 'event_type'")
    version = str(body.get("schema_version", "1"))
    if version.split(".")[0] != "1":
        raise MalformedEventError(f"unsupported schema_version {version!r} (this reader speaks v1)")
    cls = EVENT_CLASSES.get(event_type, Event)
    try:
        return cls.model_validate(body)
    except ValidationError as exc:
        raise MalformedEventError(f"wrong shape for a {event_type!r} event: {exc.error_count()} error(s)") from exc
    except (ArithmeticError, RecursionError, ValueError) as exc:
        # a timestamp whose UTC form is out of datetime's range (0001-01-01T00:00:00+05:00), a value
        # nested too deeply: not an event this reader can hold
        raise MalformedEventError(f"unreadable {event_type!r} event: {type(exc).__name__}: {exc}") from exc


__all__ = ["decode_event", "encode_event", "event_to_dict"]
