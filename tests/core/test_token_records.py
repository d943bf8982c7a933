"""Token records: what every sink, hook and consumer sees is a TokenEvent with the same wire body."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import re
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
import streamll
from hypothesis import given, settings
from hypothesis import strategies as st
from streamll import MemorySink, TokenEvent
from streamll.core.context import Execution
from streamll.core.events import Event
from streamll.core.records import TokenLane, TokenRecord, materialize
from streamll.core.serialization import decode_event, encode_event
from streamll.sinks.base import BaseSink
from streamll.streaming.bridge import TokenRun
from streamll.streaming.fields import PredictorState

STATE = PredictorState(name="QA.predict", adapter="chat", output_fields=["answer"], stream_fields=frozenset({"answer"}))
TAGS = {"user_id": "u1"}


def lm_call(run: TokenRun) -> SimpleNamespace:
    """What ``emit_token`` reads from the LM call it streams (an ``LMCallStream``'s attributes), one per run."""
    call = SimpleNamespace(state=STATE, parent_id="f" * 32, tags=TAGS, extra=None, lanes={})
    return vars(run).setdefault("test_call", call)  # type: ignore[no-any-return]


def emit(run: TokenRun, token: Any = " word", index: Any = 0, finish: Any = None) -> None:
    run.emit_token(lm_call(run), "answer", token, index, finish, "lm")  # type: ignore[arg-type]


def record(
    token: str = " w",
    tags: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    *,
    parent_id: str | None = None,
    finish: str | None = None,
) -> TokenRecord:
    data = data or {"predictor": "QA.p", "source": "lm"}
    return TokenRecord(TokenLane("e" * 32, parent_id, data, tags or {}, "QA.p", "a"), 3, token, 2, finish)


def test_a_memory_sink_gets_token_events_whose_body_is_the_records() -> None:
    sink = MemorySink()
    run = TokenRun(Execution(sinks=(sink,)))
    emit(run, " hello", 0)
    emit(run, " world", 1, "stop")
    assert sink.flush(5)
    tokens = sink.tokens()
    assert [type(event) for event in tokens] == [TokenEvent, TokenEvent]
    assert [event.token for event in tokens] == [" hello", " world"]
    assert tokens[1].finish_reason == "stop" and tokens[1].data["finish_reason"] == "stop"
    assert tokens[0].model_dump()["data"] == {
        "predictor": "QA.predict",
        "source": "lm",
        "token": " hello",
        "token_index": 0,
        "field": "answer",
        "finish_reason": None,
    }
    assert tokens[0].tags == {"user_id": "u1"} and tokens[0].tags is not TAGS
    assert tokens[0].sequence + 1 == tokens[1].sequence
    assert {(event.parent_id, event.module_name, event.operation) for event in tokens} == {
        ("f" * 32, "QA.predict", "token")
    }
    sink.stop()


@pytest.mark.parametrize(("parent_id", "finish"), [(None, None), ("f" * 32, "stop")])
def test_the_records_body_is_byte_for_byte_the_events(parent_id: str | None, finish: str | None) -> None:
    fast = record(tags={"user": "ü", "n": 1.5, "nested": {"list": [1, None, True]}}, parent_id=parent_id, finish=finish)
    body = encode_event(fast)
    built = decode_event(body)
    assert isinstance(built, TokenEvent)
    assert encode_event(fast.event()) == body
    assert built.event_id == fast.event_id and built.timestamp == fast.timestamp
    assert (built.parent_id, built.finish_reason, built.module_name) == (parent_id, finish, "QA.p")
    assert re.fullmatch("[0-9a-f]{32}", fast.event_id) and fast.event_id != record().event_id


def test_a_records_event_is_built_once_so_every_sink_and_hook_sees_the_same_object() -> None:
    fast = record()
    assert fast.event() is fast.event()
    assert materialize(fast) is fast.event()


def test_an_event_is_its_own_materialized_event() -> None:
    event = record().event()
    assert materialize(event) is event


@settings(max_examples=60, deadline=None)
@given(
    token=st.text(),
    tag=st.one_of(
        st.none(), st.integers(), st.floats(), st.text(), st.binary(max_size=4), st.sets(st.integers(), max_size=3)
    ),
)
def test_any_token_and_tag_encode_as_the_model_does(token: str, tag: Any) -> None:
    fast, slow = record(token, {"t": tag}), record(token, {"t": tag})
    slow.clock, slow._id_number = fast.clock, fast._id_number
    assert encode_event(fast) == encode_event(slow.event())


class Colour(enum.Enum):
    RED = 1


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    "tag",
    [
        datetime.datetime(2024, 1, 1, 12, 30),
        datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
        datetime.date(2024, 1, 1),
        uuid.UUID(int=7),
        float("nan"),
        float("inf"),
        (1, "two"),
        Colour.RED,
        Point(1),
        2**70,
        decimal.Decimal("1.5"),
        frozenset({1}),
        b"bytes",
        "half \ud800 pair",
        {1: "int key"},
    ],
    ids=lambda tag: type(tag).__name__,
)
def test_a_tag_of_any_type_encodes_as_the_model_does(tag: Any) -> None:
    """Values orjson writes as pydantic does go the fast way; the others (big ints, Decimal, bytes...) the model's."""
    token = record(tags={"t": tag})
    body = encode_event(token)  # before its event is built: encoded from the record when orjson can
    assert body == encode_event(token.event())


def test_the_redact_hook_gets_a_token_event() -> None:
    seen: list[type] = []

    def redact(event: Event) -> Event:
        seen.append(type(event))
        if isinstance(event, TokenEvent):
            event.token = "[x]"
        return event

    sink = MemorySink()
    streamll.configure(redact=redact)
    try:
        emit(TokenRun(Execution(sinks=(sink,))), "secret")
        assert sink.flush(5)
    finally:
        streamll.configure(redact=None)
    assert seen == [TokenEvent]
    assert sink.tokens()[0].token == "[x]" and sink.tokens()[0].data["token"] == "[x]"
    sink.stop()


def test_a_hook_that_writes_into_one_tokens_data_leaves_the_next_tokens_alone() -> None:
    def redact(event: Event) -> Event:
        if isinstance(event, TokenEvent) and event.token == "first":
            event.data["secret"] = "seen"
        return event

    sink = MemorySink()
    call = SimpleNamespace(state=STATE, parent_id=None, tags={}, extra=None, lanes={})
    run = TokenRun(Execution(sinks=(sink,)))
    streamll.configure(redact=redact)
    try:
        for index, token in enumerate(("first", " second")):
            run.emit_token(call, "answer", token, index, None, "lm")  # type: ignore[arg-type]
        assert sink.flush(5)
    finally:
        streamll.configure(redact=None)
    first, second = sink.tokens()
    assert first.data["secret"] == "seen" and "secret" not in second.data
    assert call.lanes["answer", "lm"].data == {"predictor": "QA.predict", "source": "lm"}
    sink.stop()


def test_a_sink_that_overrides_enqueue_or_encode_gets_events() -> None:
    class Stamping(MemorySink):
        def enqueue(self, event: Any) -> None:
            assert isinstance(event, TokenEvent)
            super().enqueue(event)

    encoded: list[type] = []

    class Encoding(BaseSink):
        encodes_records = True

    class OwnEncode(Encoding):
        def encode(self, event: Any) -> Any:
            encoded.append(type(event))
            return event

        async def write_batch(self, events: list[Any]) -> int | None:
            return None

    stamping, own = Stamping(), OwnEncode()
    emit(TokenRun(Execution(sinks=(stamping, own))))
    assert stamping.flush(5) and own.flush(5)
    assert encoded == [TokenEvent]
    assert stamping.tokens()[0].token == " word"
    stamping.stop()
    own.stop()


class WireSink(BaseSink):
    """A transport's way of taking events: records encoded on the worker (as Redis, NATS and Kafka do)."""

    encodes_records = True

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    def encode(self, event: Any) -> bytes:
        return encode_event(event)

    async def write_batch(self, events: list[Any]) -> int | None:
        self.bodies.extend(events)
        return None


def test_tokens_of_other_types_are_validated_as_before() -> None:
    sink, wire = MemorySink(), WireSink()
    for target in (sink, wire):  # a bool index: pydantic's rules apply, as with make_event
        emit(TokenRun(Execution(sinks=(target,))), " w", True)
    assert sink.flush(5) and wire.flush(5)
    assert type(sink.tokens()[0].token_index) is int and sink.tokens()[0].token_index == 1
    assert json.loads(sink.tokens()[0].to_json())["data"]["token_index"] == 1
    (body,) = wire.bodies
    assert b'"token_index":1,' in body, "a transport writes the validated integer, not JSON true"
    assert (sink.tokens()[0].data["predictor"], sink.tokens()[0].data["source"]) == ("QA.predict", "lm")
    sink.stop()
    wire.stop()


class Text(str):
    """A ``str`` subclass, as a provider SDK may hand out its values."""


class Reason(enum.StrEnum):
    """A finish reason given as a string enum."""

    STOP = "stop"


@pytest.mark.parametrize(
    ("token", "index", "finish", "field"),
    [
        (Text(" w"), 1, "stop", "answer"),
        (" w", True, "stop", "answer"),
        (" w", 1, Reason.STOP, "answer"),
        (" w", 1, "stop", Text("answer")),
    ],
    ids=["token", "bool-index", "finish-reason", "field-name"],
)
def test_a_token_given_in_other_types_arrives_in_plain_ones_like_the_fields_other_tokens(
    token: str, index: int, finish: str, field: str
) -> None:
    """Validated the model's way, such a token (here a typed field's last, with its value) is in the same run,
    span, tags and data as the field's tokens before it, and has the next sequence."""
    sink = MemorySink()
    run = TokenRun(Execution(sinks=(sink,)))
    state = PredictorState(
        "QA.predict", "chat", ["answer"], frozenset({"answer"}), path="qa", field_types={"answer": "int"}
    )
    call = SimpleNamespace(state=state, parent_id="f" * 32, tags=TAGS, extra={"step": 1}, lanes={})
    run.emit_token(call, "answer", "4", 0, None, "lm")  # type: ignore[arg-type]
    run.emit_token(call, field, token, index, finish, "lm", {"value": 4})  # type: ignore[arg-type]
    assert sink.flush(5)
    plain, other = sink.tokens()
    values = (other.token, other.token_index, other.finish_reason, other.field)
    assert values == (" w", 1, "stop", "answer") and [type(value) for value in values] == [str, int, str, str]
    assert type(other) is TokenEvent and other.sequence == plain.sequence + 1
    shared = ("execution_id", "parent_id", "tags", "module_name", "operation")
    assert [getattr(other, name) for name in shared] == [getattr(plain, name) for name in shared]
    assert plain.data["field_type"] == "int" and plain.data["step"] == 1
    assert other.data == {**plain.data, "token": " w", "token_index": 1, "finish_reason": "stop", "value": 4}
    sink.stop()
