"""Event models: the wire format v1 every sink writes and every consumer reads.

Every event is one JSON object (see ``streamll/schema/event.v1.json``). Token
events keep ``token``, ``token_index``, ``field`` and ``finish_reason`` in
``data`` on the wire and expose them as attributes in Python.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = "1"
"""Version of the wire format written by this release (see docs/wire-format.md)."""

EVENT_TYPES = ("token", "start", "end", "error")
"""Event types streamll itself emits; user code may emit any other name."""


def new_event_id() -> str:
    """A random 128-bit id as 32 hex characters, unique enough to de-duplicate on."""
    return os.urandom(16).hex()


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def _key_text(key: Any) -> str:
    """A dict key as JSON writes it: ``1`` -> ``"1"``, ``None`` -> ``"null"``, anything else its ``repr``."""
    if isinstance(key, (bool, int, float)) or key is None:
        return json.dumps(key)
    try:
        return repr(key)
    except Exception:
        return f"<unrepresentable {type(key).__name__}>"


class Event(BaseModel):
    """One thing that happened inside an instrumented program.

    ``execution_id`` is shared by every event of one top-level instrumented call;
    ``sequence`` orders the events of that execution; ``event_id`` is unique and
    is what consumers de-duplicate on.
    """

    model_config = ConfigDict(extra="ignore", validate_assignment=False)

    event_type: str
    event_id: str = Field(default_factory=new_event_id)
    execution_id: str = ""
    parent_id: str | None = None
    sequence: int = 0
    timestamp: datetime = Field(default_factory=utc_now)
    module_name: str | None = None
    method_name: str | None = None
    operation: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, Any] = Field(default_factory=dict)
    schema_version: str = SCHEMA_VERSION

    default_event_type: ClassVar[str | None] = None

    @model_validator(mode="before")
    @classmethod
    def _default_event_type(cls, values: Any) -> Any:
        if isinstance(values, dict) and "event_type" not in values and cls.default_event_type:
            values = {**values, "event_type": cls.default_event_type}
        return values

    @field_validator("data", "tags", mode="before")
    @classmethod
    def _string_keys(cls, value: Any) -> Any:
        """Keys JSON cannot hold (``1``, ``None``, a tuple) become text rather than a validation error in ``emit``."""
        if isinstance(value, dict) and not all(isinstance(key, str) for key in value):
            return {key if isinstance(key, str) else _key_text(key): item for key, item in value.items()}
        return value

    @field_validator("timestamp", mode="after")
    @classmethod
    def _timestamp_in_utc(cls, value: datetime) -> datetime:
        """Timestamps are UTC: an offset is converted, a naive time (another producer's) is taken as UTC."""
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        if value.tzinfo is not UTC:
            return value.astimezone(UTC)
        return value

    def to_json(self) -> bytes:
        """Encode as wire-format JSON; values JSON cannot hold are written as their ``repr``."""
        from streamll.core.serialization import encode_event

        return encode_event(self)

    @classmethod
    def from_json(cls, payload: bytes | str) -> Event:
        """Decode wire-format JSON into the matching event class."""
        from streamll.core.serialization import decode_event

        return decode_event(payload)


class TokenEvent(Event):
    """One chunk of a streamed output field.

    Per field and LM call, ``token_index`` counts 0..n-1; the last token of a
    field has a non-null ``finish_reason``. The four token attributes are also
    in ``data`` (that is where they travel on the wire).
    """

    default_event_type: ClassVar[str | None] = "token"
    event_type: Literal["token"] = "token"
    token: str = Field(default="", exclude=True)
    token_index: int = Field(default=0, exclude=True)
    field: str = Field(default="", exclude=True)
    finish_reason: str | None = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _token_fields_from_data(cls, values: Any) -> Any:
        if isinstance(values, dict):
            data = values.get("data") or {}
            if isinstance(data, dict):
                missing = {
                    key: data[key]
                    for key in ("token", "token_index", "field", "finish_reason")
                    if key not in values and key in data
                }
                if missing:
                    values = {**values, **missing}  # a copy: the caller's dict (a decoded body) stays as it was
        return values

    @model_validator(mode="after")
    def _token_fields_into_data(self) -> TokenEvent:
        self.data["token"] = self.token
        self.data["token_index"] = self.token_index
        self.data["field"] = self.field
        self.data["finish_reason"] = self.finish_reason
        return self


class StartEvent(Event):
    """A module, LM call or trace began (``operation`` says which)."""

    default_event_type: ClassVar[str | None] = "start"
    event_type: Literal["start"] = "start"


class EndEvent(Event):
    """A module, LM call or trace finished.

    ``data`` holds ``duration_ms`` and, for LM calls, ``finish_reason`` and ``usage``.
    """

    default_event_type: ClassVar[str | None] = "end"
    event_type: Literal["end"] = "end"


class ErrorEvent(Event):
    """A module, LM call or trace raised; ``data`` holds ``error_type``, ``error_message`` and ``duration_ms``."""

    default_event_type: ClassVar[str | None] = "error"
    event_type: Literal["error"] = "error"


EVENT_CLASSES: dict[str, type[Event]] = {
    "token": TokenEvent,
    "start": StartEvent,
    "end": EndEvent,
    "error": ErrorEvent,
}
"""Python class for each event type streamll emits; any other type decodes as :class:`Event`."""


__all__ = [
    "EVENT_CLASSES",
    "EVENT_TYPES",
    "SCHEMA_VERSION",
    "EndEvent",
    "ErrorEvent",
    "Event",
    "StartEvent",
    "TokenEvent",
    "new_event_id",
    "utc_now",
]
