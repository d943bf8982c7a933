"""Event models: the wire format v1 every sink writes and every consumer reads.

Every event is one JSON object (see ``streamll/schema/event.v1.json``). Token
events keep ``token``, ``token_index``, ``field`` and ``finish_reason`` in
``data`` on the wire and expose them as attributes in Python.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from streamll.core import codec
from streamll.core.ids import new_event_id

SCHEMA_VERSION = "1"
"""Version of the wire format written by this release (see docs/wire-format.md)."""

EVENT_TYPES = ("token", "start", "end", "error", "tool_start", "tool_end", "tool_error", "status")
"""Event types streamll itself emits; user code may emit any other name.

``tool_start`` / ``tool_end`` / ``tool_error`` and ``status`` were added within
v1 (new event types are additive: readers that do not know them treat them as
custom events).
"""


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
        return codec.encode(self)

    @classmethod
    def from_json(cls, payload: bytes | str) -> Event:
        """Decode wire-format JSON into the matching event class."""
        return codec.decode(payload, EVENT_CLASSES, Event)


_new = object.__new__
_set = object.__setattr__
_str = str
_now = datetime.now
TOKEN_FIELDS = ("token", "token_index", "field", "finish_reason")
"""Attributes of a :class:`TokenEvent` that travel in ``data`` on the wire."""
_TEXT_FIELDS = frozenset(("module_name", "method_name", "operation"))
_TOKEN_KEYS = _TEXT_FIELDS | frozenset(TOKEN_FIELDS)


def build_event(
    cls: type[Event],
    event_type: str,
    execution_id: str,
    parent_id: str | None,
    sequence: int,
    data: dict[str, Any],
    tags: dict[str, Any],
    fields: dict[str, Any],
) -> Event:
    """An event built without pydantic validation when every value already has its declared type.

    This is the per-token hot path: validating a :class:`TokenEvent` costs
    several microseconds, building it directly a fraction of that. ``data``
    and ``tags`` are owned by the new event. Values of another type (or an
    unknown field) go through ``cls(...)`` and its validation, as before.
    """
    token = cls is TokenEvent
    get = fields.get
    if not _builds_directly(cls, token, event_type, execution_id, parent_id, sequence, data, tags, fields):
        return _validated(cls, event_type, execution_id, parent_id, sequence, data, tags, fields)
    values = {
        "event_type": event_type,
        "event_id": new_event_id(),
        "execution_id": execution_id,
        "parent_id": parent_id,
        "sequence": sequence,
        "timestamp": _now(UTC),
        "module_name": get("module_name"),
        "method_name": get("method_name"),
        "operation": get("operation"),
        "data": data,
        "tags": tags,
        "schema_version": SCHEMA_VERSION,
    }
    if token and not _token_values(values, data, get):
        return _validated(cls, event_type, execution_id, parent_id, sequence, data, tags, fields)
    event = _new(cls)
    _set(event, "__dict__", values)
    _set(event, "__pydantic_fields_set__", set(values))
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event


def _builds_directly(
    cls: type[Event],
    token: bool,
    event_type: str,
    execution_id: Any,
    parent_id: Any,
    sequence: Any,
    data: dict[str, Any],
    tags: dict[str, Any],
    fields: dict[str, Any],
) -> bool:
    """Whether every value already has its declared type, so :func:`build_event` may skip validation."""
    if not (
        (token and event_type == "token" and fields.keys() <= _TOKEN_KEYS)
        or (not token and fields.keys() <= _TEXT_FIELDS and (cls is Event or _lifecycle(cls, event_type)))
    ):
        return False
    get = fields.get
    module_name, method_name, operation = get("module_name"), get("method_name"), get("operation")
    return (
        type(execution_id) is _str
        and type(sequence) is int
        and (parent_id is None or type(parent_id) is _str)
        and (module_name is None or type(module_name) is _str)
        and (method_name is None or type(method_name) is _str)
        and (operation is None or type(operation) is _str)
        and _text_keys(data)
        and _text_keys(tags)
    )


def _token_values(values: dict[str, Any], data: dict[str, Any], get: Any) -> bool:
    """Put a token's text, index, field and finish reason into ``values`` and ``data``; False if mistyped."""
    text = get("token", data.get("token", ""))
    index = get("token_index", data.get("token_index", 0))
    name = get("field", data.get("field", ""))
    finish = get("finish_reason", data.get("finish_reason"))
    if not (
        type(text) is _str and type(index) is int and type(name) is _str and (finish is None or type(finish) is _str)
    ):
        return False
    data["token"] = values["token"] = text
    data["token_index"] = values["token_index"] = index
    data["field"] = values["field"] = name
    data["finish_reason"] = values["finish_reason"] = finish
    return True


def _lifecycle(cls: type[Event], event_type: str) -> bool:
    """Whether ``cls`` is the lifecycle class of ``event_type`` (``StartEvent`` for ``start``, ...)."""
    return cls in _LIFECYCLE and event_type == cls.default_event_type


def _text_keys(mapping: dict[str, Any]) -> bool:
    """Whether every key of ``mapping`` is a ``str``."""
    if not mapping:
        return True
    for key in mapping:  # noqa: SIM110 - a plain loop: no generator object per event on the hot path
        if type(key) is not _str:
            return False
    return True


def _validated(
    cls: type[Event],
    event_type: str,
    execution_id: str,
    parent_id: str | None,
    sequence: int,
    data: dict[str, Any],
    tags: dict[str, Any],
    fields: dict[str, Any],
) -> Event:
    return cls(
        event_type=event_type,
        execution_id=execution_id,
        parent_id=parent_id,
        sequence=sequence,
        data=data,
        tags=tags,
        **fields,
    )


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


class ToolStartEvent(Event):
    """A tool is about to run (``operation`` ``"tool"``, ``module_name`` the tool's name).

    ``data`` holds ``tool_call_id``, ``tool_name`` and ``arguments``; when known,
    ``lm_call_id`` (the ``event_id`` of the LM call's start event that chose
    the tool) and ``step`` (the ReAct iteration, counting from 0).
    """

    default_event_type: ClassVar[str | None] = "tool_start"
    event_type: Literal["tool_start"] = "tool_start"


class ToolEndEvent(Event):
    """A tool returned: ``data`` holds ``tool_call_id``, ``tool_name``, ``duration_ms`` and a bounded ``result``."""

    default_event_type: ClassVar[str | None] = "tool_end"
    event_type: Literal["tool_end"] = "tool_end"


class ToolErrorEvent(Event):
    """A tool raised: ``data`` holds ``tool_call_id``, ``tool_name``, ``error_type``, ``error_message``.

    The exception itself propagates exactly as in the plain program.
    """

    default_event_type: ClassVar[str | None] = "tool_error"
    event_type: Literal["tool_error"] = "tool_error"


class StatusEvent(Event):
    """A one-line status message (``data["message"]``), as DSPy's ``StatusMessageProvider`` words it."""

    default_event_type: ClassVar[str | None] = "status"
    event_type: Literal["status"] = "status"


_LIFECYCLE: tuple[type[Event], ...] = (
    StartEvent,
    EndEvent,
    ErrorEvent,
    ToolStartEvent,
    ToolEndEvent,
    ToolErrorEvent,
    StatusEvent,
)

EVENT_CLASSES: dict[str, type[Event]] = {
    "token": TokenEvent,
    "start": StartEvent,
    "end": EndEvent,
    "error": ErrorEvent,
    "tool_start": ToolStartEvent,
    "tool_end": ToolEndEvent,
    "tool_error": ToolErrorEvent,
    "status": StatusEvent,
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
    "StatusEvent",
    "TOKEN_FIELDS",
    "TokenEvent",
    "ToolEndEvent",
    "ToolErrorEvent",
    "ToolStartEvent",
    "build_event",
    "new_event_id",
    "utc_now",
]
