"""The wire JSON codec for event models, independent of the event classes it is given.

``events`` builds ``Event.to_json`` / ``Event.from_json`` on it and ``serialization`` binds it
to the event classes, so the dependency runs one way: ``serialization`` -> ``events`` -> ``codec``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, to_json

from streamll.errors import MalformedEventError

__all__ = ["decode", "encode"]


class _EventModel(Protocol):
    """What the codec needs of an event: pydantic's JSON dump and copy, and the two free-form mappings."""

    data: dict[str, Any]
    tags: dict[str, Any]

    def model_dump_json(self, *, fallback: Any = None) -> str:
        """JSON text of the model."""
        ...

    def model_copy(self, *, update: dict[str, Any] | None = None) -> Any:
        """A copy with ``update`` applied."""
        ...


_Model = TypeVar("_Model", bound=BaseModel)


def _repr(value: Any) -> str:
    """``repr(value)``, or a placeholder when ``__repr__`` itself raises."""
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not break the user's program
        return f"<unrepresentable {type(value).__name__}>"


_SURROGATE = re.compile("[\ud800-\udfff]")


def _as_text(value: Any) -> str:
    """Text standing in for a value that cannot be written as JSON at all."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, str):  # it holds half a surrogate pair, which UTF-8 cannot carry
        return _SURROGATE.sub("\ufffd", value)
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


def encode(event: _EventModel) -> bytes:
    """Wire-format JSON bytes for ``event``; values JSON cannot hold are written as text."""
    try:
        return event.model_dump_json(fallback=_fallback).encode("utf-8")
    except _UNWRITABLE:
        safe = event.model_copy(update={"data": _writable(event.data), "tags": _writable(event.tags)})
        return safe.model_dump_json(fallback=_fallback).encode("utf-8")


def _body(payload: bytes | str | dict[str, Any]) -> dict[str, Any]:
    """The JSON object in ``payload``, or ``MalformedEventError``."""
    if isinstance(payload, dict):
        return payload
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedEventError(f"not JSON: {exc}") from exc
    except RecursionError:  # b"[" * 100000: nested deeper than the parser can follow
        raise MalformedEventError("not JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise MalformedEventError(f"expected a JSON object, got {type(body).__name__}")
    return body


def decode(payload: bytes | str | dict[str, Any], classes: Mapping[str, type[_Model]], default: type[_Model]) -> _Model:
    """Decode a wire-format body into ``classes[event_type]`` (``default`` for other types).

    Raises :class:`~streamll.errors.MalformedEventError` for anything that is
    not a JSON object of the right shape; unknown fields are ignored so newer
    v1 producers stay readable.
    """
    body = _body(payload)
    event_type = body.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise MalformedEventError("missing non-empty string field 'event_type'")
    version = str(body.get("schema_version", "1"))
    if version.split(".")[0] != "1":
        raise MalformedEventError(f"unsupported schema_version {version!r} (this reader speaks v1)")
    cls = classes.get(event_type, default)
    try:
        return cls.model_validate(body)
    except ValidationError as exc:
        raise MalformedEventError(f"wrong shape for a {event_type!r} event: {exc.error_count()} error(s)") from exc
    except (ArithmeticError, RecursionError, ValueError) as exc:
        # a timestamp whose UTC form is out of datetime's range (0001-01-01T00:00:00+05:00), a value
        # nested too deeply: not an event this reader can hold
        raise MalformedEventError(f"unreadable {event_type!r} event: {type(exc).__name__}: {exc}") from exc
