"""Token events as light records: captured on the program thread, built and encoded on the sink worker.

A :class:`TokenRecord` holds what a :class:`~streamll.core.events.TokenEvent`
is made of (ids, sequence, clock reading, token fields) in a slots object,
which costs a fraction of building the pydantic model. Nothing user code
sees is a record: :meth:`TokenRecord.event` builds the ``TokenEvent`` (once)
for every sink or hook that reads events, and transports that only write the
wire body call :meth:`TokenRecord.body`, which encodes the same JSON as
:func:`~streamll.core.serialization.encode_event` without the model.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

import orjson

from streamll.core import ids
from streamll.core.events import SCHEMA_VERSION, Event, TokenEvent, build_event

_from_timestamp = datetime.fromtimestamp
_dumps = orjson.dumps
_UTC_Z = orjson.OPT_UTC_Z
_time = time.time


class TokenLane:
    """What the tokens of one field of one LM call share: captured once, referenced by each token's record.

    A record then holds the lane and the token's own values instead of copying
    the shared ones for every token (the program thread's cost per token); the
    lane is never changed once made.
    """

    __slots__ = ("data", "execution_id", "field", "module_name", "parent_id", "tags")

    def __init__(
        self,
        execution_id: str,
        parent_id: str | None,
        data: dict[str, Any],
        tags: dict[str, Any],
        module_name: str | None,
        field: str,
    ) -> None:
        """The shared values; ``data`` and ``tags`` are copied into each event when it is built."""
        self.execution_id = execution_id
        self.parent_id = parent_id
        self.data = data
        self.tags = tags
        self.module_name = module_name
        self.field = field


class TokenRecord:
    """One token event as captured on the program thread (see the module docstring).

    The attributes transports read (``event_type``, ``event_id``,
    ``execution_id``, ``module_name``, ``timestamp``, ``schema_version``) are
    those of the event it stands for; the values its field's tokens share are
    read from its :class:`TokenLane`.
    """

    __slots__ = (
        "_event",
        "_id_number",
        "_id_prefix",
        "clock",
        "finish_reason",
        "lane",
        "sequence",
        "token",
        "token_index",
    )

    event_type = "token"
    method_name = None
    operation = "token"
    schema_version = SCHEMA_VERSION

    execution_id = property(attrgetter("lane.execution_id"), doc="The execution the token belongs to.")
    parent_id = property(attrgetter("lane.parent_id"), doc="The LM span the token streams in.")
    data = property(attrgetter("lane.data"), doc="``data`` besides the four token keys (shared: never change it).")
    tags = property(attrgetter("lane.tags"), doc="The tags current at the LM call (shared: never change them).")
    module_name = property(attrgetter("lane.module_name"), doc="The predictor the token comes from.")
    field = property(attrgetter("lane.field"), doc="The output field the token belongs to.")

    def __init__(self, lane: TokenLane, sequence: int, token: str, token_index: int, finish_reason: str | None) -> None:
        """Take the token's values; its event id and timestamp are fixed now, at emission, not when built."""
        self._id_prefix = ids._id_prefix
        self._id_number = next(ids._id_counter)
        self.clock = _time()
        self.lane = lane
        self.sequence = sequence
        self.token = token
        self.token_index = token_index
        self.finish_reason = finish_reason
        self._event: Event | None = None

    @property
    def event_id(self) -> str:
        """The id the event carries (the same as :func:`~streamll.core.events.new_event_id` would give)."""
        return f"{self._id_prefix}{self._id_number & 0xFFFFFFFFFFFFFFFF:016x}"

    @property
    def timestamp(self) -> datetime:
        """When the token was captured, in UTC."""
        return _from_timestamp(self.clock, UTC)

    def event(self) -> Event:
        """The :class:`TokenEvent` this record stands for (built once; later calls return the same object)."""
        built = self._event
        if built is None:
            built = self._event = self._build()
        return built

    def _build(self) -> Event:
        lane = self.lane
        fields = {
            "module_name": lane.module_name,
            "operation": "token",
            "token": self.token,
            "token_index": self.token_index,
            "field": lane.field,
            "finish_reason": self.finish_reason,
        }
        built = build_event(
            TokenEvent,
            "token",
            lane.execution_id,
            lane.parent_id,
            self.sequence,
            dict(lane.data),
            dict(lane.tags),
            fields,
        )
        values = built.__dict__  # the id and time captured on the program thread, not the build's
        values["event_id"] = self.event_id
        values["timestamp"] = self.timestamp
        return built

    def fast_body(self) -> bytes | None:
        """The v1 JSON body, byte for byte what ``encode_event(self.event())`` writes, encoded without the model.

        ``None`` when the event was built already (a hook may have changed it)
        or a value is one orjson would write differently from pydantic: then
        the caller encodes :meth:`event`.
        """
        if self._event is not None:
            return None
        try:
            return self._encode()
        except (TypeError, ValueError, OverflowError):  # a type orjson lacks: orjson.JSONEncodeError, a TypeError
            return None

    def _encode(self) -> bytes:
        lane = self.lane
        data = dict(lane.data)
        data["token"] = self.token
        data["token_index"] = self.token_index
        data["field"] = lane.field
        data["finish_reason"] = self.finish_reason
        return _dumps(
            {
                "event_type": "token",
                "event_id": self.event_id,
                "execution_id": lane.execution_id,
                "parent_id": lane.parent_id,
                "sequence": self.sequence,
                "timestamp": _from_timestamp(self.clock, UTC),
                "module_name": lane.module_name,
                "method_name": None,
                "operation": "token",
                "data": data,
                "tags": lane.tags,
                "schema_version": SCHEMA_VERSION,
            },
            option=_UTC_Z,
        )

    def __repr__(self) -> str:
        """Execution, sequence, field and token: what tells records apart in a log or a failed test."""
        return f"<TokenRecord {self.execution_id}#{self.sequence} {self.field}[{self.token_index}] {self.token!r}>"


def materialize(event: Event | TokenRecord) -> Event:
    """The event itself, or the event a record stands for."""
    return event.event() if type(event) is TokenRecord else event  # type: ignore[union-attr,return-value]


__all__ = ["TokenLane", "TokenRecord", "materialize"]
