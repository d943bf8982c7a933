"""Events and the wire encoding: what sinks write and consumers read back."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import streamll
from streamll.core.context import Execution
from streamll.core.emitter import make_event
from streamll.core.events import EndEvent, ErrorEvent, Event, StartEvent, TokenEvent
from streamll.core.serialization import decode_event, encode_event, event_to_dict
from streamll.errors import MalformedEventError


def token(**fields: Any) -> TokenEvent:
    event, _ = make_event("token", cls=TokenEvent, module_name="QA", operation="lm", **fields)
    assert isinstance(event, TokenEvent)
    return event


# ---------------------------------------------------------------------- TokenEvent


def test_token_fields_are_attributes_and_in_data() -> None:
    event = token(token="Machine", token_index=3, field="answer", finish_reason="stop")
    assert (event.token, event.token_index, event.field, event.finish_reason) == ("Machine", 3, "answer", "stop")
    assert event.data == {"token": "Machine", "token_index": 3, "field": "answer", "finish_reason": "stop"}


def test_token_fields_given_in_data_become_attributes(memory_sink: streamll.MemorySink) -> None:
    event = streamll.emit("token", data={"token": " learning", "token_index": 1, "field": "answer"})
    assert isinstance(event, TokenEvent)
    assert (event.token, event.token_index, event.field, event.finish_reason) == (" learning", 1, "answer", None)
    assert event.data["finish_reason"] is None


def test_token_fields_travel_in_data_on_the_wire() -> None:
    body = json.loads(encode_event(token(token="x", token_index=0, field="answer")))
    assert body["data"] == {"token": "x", "token_index": 0, "field": "answer", "finish_reason": None}
    assert not {"token", "token_index", "field", "finish_reason"} & set(body)


def test_decoding_a_token_body_does_not_modify_the_callers_dict() -> None:
    body = event_to_dict(token(token="x", token_index=2, field="answer"))
    before = json.dumps(body, sort_keys=True)
    event = decode_event(body)
    assert isinstance(event, TokenEvent) and event.token_index == 2
    assert json.dumps(body, sort_keys=True) == before


# ---------------------------------------------------------------------- common fields


def test_every_event_gets_a_unique_id() -> None:
    ids = {Event(event_type="x").event_id for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(event_id) == 32 and int(event_id, 16) >= 0 for event_id in ids)


def test_timestamp_is_utc_now() -> None:
    before = datetime.now(UTC)
    event = Event(event_type="x")
    after = datetime.now(UTC)
    assert event.timestamp.utcoffset() == timedelta(0)
    assert before <= event.timestamp <= after
    assert event_to_dict(event)["timestamp"].endswith("Z")


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10, 0, tzinfo=UTC)),
        ("2024-05-01T12:00:00", datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, 0, tzinfo=UTC)),
    ],
)
def test_timestamps_from_other_producers_are_read_as_utc(written: str, expected: datetime) -> None:
    event = decode_event({"event_type": "x", "timestamp": written})
    assert event.timestamp == expected
    assert event.timestamp.utcoffset() == timedelta(0)
    assert event_to_dict(event)["timestamp"] == expected.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_schema_version_is_1() -> None:
    event = Event(event_type="x")
    assert event.schema_version == "1"
    assert event_to_dict(event)["schema_version"] == "1"


# ---------------------------------------------------------------------- round trip


def _examples() -> list[Event]:
    execution = Execution()
    return [
        make_event("start", {"inputs": {"q": "?"}}, execution=execution, module_name="QA", operation="module")[0],
        make_event("token", execution=execution, cls=TokenEvent, token="Hi", token_index=0, field="answer")[0],
        make_event("end", {"duration_ms": 1.5}, execution=execution, module_name="QA")[0],
        make_event(
            "error", {"error_type": "ValueError", "error_message": "boom", "duration_ms": 2.0}, execution=execution
        )[0],
        make_event("retrieval_hit", {"doc": "d1", "score": 0.5}, execution=execution, tags={"user_id": "u1"})[0],
    ]


@pytest.mark.parametrize(
    ("index", "cls"), [(0, StartEvent), (1, TokenEvent), (2, EndEvent), (3, ErrorEvent), (4, Event)]
)
def test_json_round_trip_gives_the_same_event_of_the_right_class(index: int, cls: type[Event]) -> None:
    original = _examples()[index]
    decoded = decode_event(encode_event(original))
    assert type(decoded) is cls
    assert decoded == original
    assert Event.from_json(original.to_json()) == original
    assert decode_event(encode_event(original).decode()) == original


def test_unknown_fields_are_ignored() -> None:
    body = event_to_dict(_examples()[1])
    body["added_in_v1_7"] = {"anything": [1, 2]}
    body["data"]["extra_key"] = "kept in data"
    decoded = decode_event(json.dumps(body))
    assert isinstance(decoded, TokenEvent)
    assert decoded.token == "Hi"
    assert not hasattr(decoded, "added_in_v1_7")
    assert decoded.data["extra_key"] == "kept in data"


def test_minor_schema_versions_of_v1_are_read() -> None:
    assert decode_event({"event_type": "x", "schema_version": "1.4"}).event_type == "x"


# ---------------------------------------------------------------------- values JSON cannot hold


class RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class Unpicklable:
    def __reduce__(self) -> Any:
        raise AssertionError("streamll must never pickle user data")

    def __repr__(self) -> str:
        return "<Unpicklable>"


@pytest.mark.parametrize(
    ("value", "check"),
    [
        (object(), lambda out: out.startswith("<object object at")),
        ({3, 1, 2}, lambda out: sorted(out) == [1, 2, 3]),
        (frozenset({"a"}), lambda out: out == ["a"]),
        (b"bytes", lambda out: out == "bytes"),
        (b"\xff\xfe not utf-8", lambda out: isinstance(out, str) and "not utf-8" in out),
        ({b"\xff"}, lambda out: isinstance(out, (str, list))),
        ((b"\xff", 1), lambda out: isinstance(out, (str, list))),
        ([1, {"deep": {object()}}], lambda out: out[0] == 1 and isinstance(out[1]["deep"], list)),
        (RaisingRepr(), lambda out: isinstance(out, str) and "RaisingRepr" in out),
        ([RaisingRepr()], lambda out: isinstance(out, list) and "RaisingRepr" in out[0]),
        (Unpicklable(), lambda out: out == "<Unpicklable>"),
        (pickle, lambda out: "module 'pickle'" in out),
        (float("nan"), lambda out: out is None),
    ],
    ids=[
        "object",
        "set",
        "frozenset",
        "bytes",
        "non-utf8-bytes",
        "set-of-bad-bytes",
        "tuple-of-bad-bytes",
        "nested",
        "raising-repr",
        "list-of-raising-repr",
        "unpicklable",
        "module",
        "nan",
    ],
)
def test_values_json_cannot_hold_are_encoded_as_text_never_raised(value: Any, check: Any) -> None:
    event = Event(event_type="custom", data={"value": value, "ok": "fine"}, tags={"tag": value})
    body = json.loads(encode_event(event))
    assert check(body["data"]["value"]), body["data"]["value"]
    assert check(body["tags"]["tag"]), body["tags"]["tag"]
    assert body["data"]["ok"] == "fine"


def test_cycles_are_encoded_as_text() -> None:
    cycle: list[Any] = [1]
    cycle.append(cycle)
    body = json.loads(encode_event(Event(event_type="custom", data={"cycle": cycle, "ok": 1})))
    assert isinstance(body["data"]["cycle"], str) and body["data"]["ok"] == 1


def test_emit_accepts_data_with_non_string_keys() -> None:
    streamll.configure(sinks=[])
    try:
        event = streamll.emit("custom", data={1: "one", None: "none", (1, 2): "pair", "s": {2: "two"}})
    finally:
        streamll.configure(sinks=None)
    body = json.loads(encode_event(event))
    assert body["data"]["1"] == "one"
    assert body["data"]["null"] == "none"
    assert body["data"]["(1, 2)"] == "pair"
    assert body["data"]["s"] == {"2": "two"}


# ---------------------------------------------------------------------- malformed bodies


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b"\xff\xfe\x00",
        b"",
        b"[1, 2, 3]",
        b'"a string"',
        b"null",
        b'{"data": {}}',
        b'{"event_type": 5}',
        b'{"event_type": ""}',
        b'{"event_type": "token", "schema_version": "2"}',
        b'{"event_type": "token", "schema_version": "2.0"}',
        b'{"event_type": "token", "data": {"token_index": "first"}}',
        b'{"event_type": "end", "data": null}',
    ],
)
def test_malformed_bodies_raise_malformed_event_error(body: bytes) -> None:
    with pytest.raises(MalformedEventError):
        decode_event(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{nope", r"^not JSON: Expecting property name enclosed in double quotes"),
        (b"[" * 100_000, r"^not JSON: nested too deeply$"),
        (b"[1, 2]", r"^expected a JSON object, got list$"),
        (b'{"data": {}}', r"^missing non-empty string field 'event_type'$"),
        (b'{"event_type": ""}', r"^missing non-empty string field 'event_type'$"),
        (b'{"event_type": "token", "schema_version": "2.0"}', r"^unsupported schema_version '2.0' \(this reader"),
        (
            b'{"event_type": "token", "data": {"token_index": "first"}}',
            r"^wrong shape for a 'token' event: 1 error\(s\)$",
        ),
        (
            b'{"event_type": "x", "timestamp": "0001-01-01T00:00:00+05:00"}',
            r"^unreadable 'x' event: (OverflowError|ValueError): ",
        ),
    ],
)
def test_a_malformed_body_is_named_in_one_line(body: bytes, message: str) -> None:
    """Each rejection says what was wrong: consumers log it and skip the message."""
    with pytest.raises(MalformedEventError, match=message) as info:
        decode_event(body)
    assert "\n" not in str(info.value)


def test_malformed_event_error_is_a_streamll_error_and_a_value_error() -> None:
    with pytest.raises(streamll.StreamllError) as info:
        decode_event(b'{"event_type": "x", "schema_version": "2"}')
    assert isinstance(info.value, ValueError)
    assert "schema_version" in str(info.value)


def test_a_token_record_encodes_to_the_body_of_its_event() -> None:
    """Sinks encode token records straight to JSON; the body is the event's, byte for byte, on both paths."""
    from streamll.core.records import TokenLane, TokenRecord
    from streamll.core.serialization import encode_event, event_to_dict

    plain = TokenRecord(
        TokenLane("e" * 32, None, {"predictor": "QA.p"}, {"user": "u1"}, "QA.p", "a"), 3, " hi", 2, None
    )
    assert plain.fast_body() is not None
    assert encode_event(plain) == encode_event(plain.event())
    odd = TokenRecord(TokenLane("e" * 32, None, {"ids": {1, 2}}, {}, "QA.p", "a"), 4, " hi", 3, "stop")
    assert odd.fast_body() is None  # a set: orjson would write it differently, so the model path writes it
    assert encode_event(odd) == encode_event(odd.event())
    assert event_to_dict(odd)["data"]["ids"] == [1, 2]
