"""The wire format v1: the JSON Schema and the event models describe the same thing.

Changing the models without the schema (or the reverse) fails here; every
event the rest of the suite produces is also validated by ``tests.schema_check``.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import streamll
from pydantic import BaseModel
from streamll.core import cloudevents
from streamll.core.context import Execution
from streamll.core.emitter import make_event
from streamll.core.events import (
    EVENT_CLASSES,
    EVENT_TYPES,
    SCHEMA_VERSION,
    EndEvent,
    ErrorEvent,
    Event,
    StartEvent,
    StatusEvent,
    TokenEvent,
    ToolEndEvent,
    ToolErrorEvent,
    ToolStartEvent,
)
from streamll.core.serialization import decode_event, encode_event, event_to_dict
from streamll.core.spans import Span, error_data
from streamll.core.tools import RESULT_LIMIT, ToolSpan, result_summary
from streamll.errors import MalformedEventError
from streamll.schema import load_schema, schema_errors, validate_event, validator

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


# ---------------------------------------------------------------------- examples


def example_events() -> list[Event]:
    """One event of every kind core emits, built the way core builds them."""
    execution = Execution()
    events: list[Event] = []
    sink = streamll.MemorySink(name="examples")
    try:
        with Span("module", "QA", method_name="forward", sinks=(sink,), data={"inputs": {"question": "q"}}) as module:
            with Span("lm", "openai/offline"):
                for index, text in enumerate(["Machine", " learning"]):
                    token, _ = make_event(
                        "token",
                        cls=TokenEvent,
                        module_name="QA",
                        operation="lm",
                        token=text,
                        token_index=index,
                        field="answer",
                        finish_reason="stop" if index == 1 else None,
                    )
                    events.append(token)
            lm_end, _ = make_event(
                "end",
                {"duration_ms": 12.5, "finish_reason": "stop", "usage": {"prompt_tokens": 7, "completion_tokens": 2}},
                module_name="openai/offline",
                operation="lm",
            )
            events.append(lm_end)
            events.append(module.emit("retrieval_hit", {"doc_id": 3, "score": 0.5, "why": {1, 2}}))
            ToolSpan("add", {"a": 2, "b": 3}, extra={"step": 0}).open("Calling tool add...").close(5, status="done")
            failing = ToolSpan("lookup", {"term": "x"}).open()
            failing.close(error=KeyError("x"))
            try:
                with Span("trace", "retrieve"):
                    raise KeyError("missing")
            except KeyError:
                pass
        assert sink.flush(5)
        events.extend(sink.events)
    finally:
        sink.stop()
    events.append(make_event("start", execution=execution, module_name="Other")[0])
    return events


def valid_bodies() -> list[dict[str, Any]]:
    """Wire bodies of :func:`example_events`, plus hand-written ones a v1 producer may send."""
    bodies = [event_to_dict(event) for event in example_events()]
    token = next(body for body in bodies if body["event_type"] == "token")
    bodies.append({**token, "schema_version": "1.3", "added_later": {"x": 1}})
    bodies.append({**token, "data": {**token["data"], "logprob": -0.1}})
    bodies.append({**token, "timestamp": "2025-01-02T03:04:05+02:00"})
    return bodies


def _token_body() -> dict[str, Any]:
    return event_to_dict(TokenEvent(execution_id="e1", token="Hi", token_index=0, field="answer"))


def _broken(
    change: dict[str, Any], *, data: dict[str, Any] | None = None, drop: tuple[str, ...] = ()
) -> dict[str, Any]:
    body = copy.deepcopy(_token_body())
    body.update(change)
    if data is not None:
        body["data"] = {**body["data"], **data}
    for key in drop:
        if key.startswith("data."):
            body["data"].pop(key[5:])
        else:
            body.pop(key)
    return body


def _end_body(**data: Any) -> dict[str, Any]:
    return event_to_dict(EndEvent(execution_id="e1", data=data))


def _error_body(**data: Any) -> dict[str, Any]:
    return event_to_dict(ErrorEvent(execution_id="e1", data=data))


def _tool_body(event_type: str, **data: Any) -> dict[str, Any]:
    return event_to_dict(Event(event_type=event_type, execution_id="e1", data=data))


TOOL = {"tool_call_id": "call_1", "tool_name": "add"}


INVALID_BODIES: dict[str, Any] = {
    "not an object": ["token"],
    "no event_id": _broken({}, drop=("event_id",)),
    "no schema_version": _broken({}, drop=("schema_version",)),
    "schema_version 2": _broken({"schema_version": "2"}),
    "empty event_type": _broken({"event_type": ""}),
    "negative sequence": _broken({"sequence": -1}),
    "sequence as text": _broken({"sequence": "3"}),
    "parent_id a number": _broken({"parent_id": 5}),
    "timestamp without offset": _broken({"timestamp": "2025-01-02T03:04:05"}),
    "timestamp not a date": _broken({"timestamp": "yesterday"}),
    "data a list": _broken({"data": []}),
    "tags null": _broken({"tags": None}),
    "token without token_index": _broken({}, drop=("data.token_index",)),
    "token without field": _broken({}, drop=("data.field",)),
    "token without finish_reason": _broken({}, drop=("data.finish_reason",)),
    "token not text": _broken({}, data={"token": 7}),
    "negative token_index": _broken({}, data={"token_index": -1}),
    "fractional token_index": _broken({}, data={"token_index": 1.5}),
    "finish_reason a number": _broken({}, data={"finish_reason": 0}),
    "end without duration_ms": _end_body(),
    "end with negative duration": _end_body(duration_ms=-1),
    "end with usage as text": _end_body(duration_ms=1.0, usage="7 tokens"),
    "end with fractional usage": _end_body(duration_ms=1.0, usage={"prompt_tokens": 1.5}),
    "error without error_type": _error_body(error_message="boom"),
    "error without error_message": _error_body(error_type="KeyError"),
    "tool_start without arguments": _tool_body("tool_start", **TOOL),
    "tool_start without tool_call_id": _tool_body("tool_start", tool_name="add", arguments={}),
    "tool_start with arguments as text": _tool_body("tool_start", **TOOL, arguments="a=2"),
    "tool_start with an empty tool_call_id": _tool_body("tool_start", tool_call_id="", tool_name="add", arguments={}),
    "tool_end without result": _tool_body("tool_end", **TOOL, duration_ms=1.0),
    "tool_end without duration_ms": _tool_body("tool_end", **TOOL, result="5"),
    "tool_end with a result object": _tool_body("tool_end", **TOOL, duration_ms=1.0, result={"x": 1}),
    "tool_error without error_type": _tool_body("tool_error", **TOOL, error_message="boom"),
    "tool_error without tool_name": _tool_body("tool_error", tool_call_id="c", error_type="E", error_message="m"),
    "status without message": _tool_body("status", stage="tool_start"),
    "status message not text": _tool_body("status", message=3),
}


# ---------------------------------------------------------------------- schema file


def test_schema_is_draft_2020_12_and_well_formed() -> None:
    from jsonschema import Draft202012Validator

    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_load_schema_returns_a_fresh_copy() -> None:
    load_schema()["properties"].clear()
    assert load_schema()["properties"]


def test_jsonschema_is_needed_only_to_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    import streamll.schema as schema_module

    monkeypatch.setitem(sys.modules, "jsonschema", None)  # as if not installed
    schema_module.validator.cache_clear()
    try:
        assert load_schema()["title"]
        with pytest.raises(ImportError, match=r"pip install 'streamll-core\[schema\]'"):
            validate_event(_token_body())
    finally:
        schema_module.validator.cache_clear()


# ---------------------------------------------------------------------- schema <-> models drift


def _serialized_fields(model: type[BaseModel]) -> set[str]:
    return {name for name, field in model.model_fields.items() if not field.exclude}


def _json_types(fragment: dict[str, Any]) -> set[str]:
    """The JSON types a schema fragment allows (from ``type`` or ``anyOf`` of types)."""
    if "anyOf" in fragment:
        return set().union(*(_json_types(option) for option in fragment["anyOf"]))
    declared = fragment.get("type", [])
    return {declared} if isinstance(declared, str) else set(declared)


def test_base_properties_and_required_equal_the_model_fields() -> None:
    schema = load_schema()
    fields = _serialized_fields(Event)
    assert set(schema["properties"]) == fields
    assert set(schema["required"]) == fields  # pydantic always writes every field


@pytest.mark.parametrize("cls", [Event, *EVENT_CLASSES.values()], ids=lambda cls: cls.__name__)
def test_every_event_class_serializes_the_base_fields(cls: type[Event]) -> None:
    assert _serialized_fields(cls) == _serialized_fields(Event)


def test_property_types_equal_the_model_types() -> None:
    ours = load_schema()["properties"]
    pydantics = Event.model_json_schema(mode="serialization")["properties"]
    for name, fragment in pydantics.items():
        assert _json_types(ours[name]) == _json_types(fragment), name
    assert ours["timestamp"]["format"] == pydantics["timestamp"]["format"] == "date-time"


def test_known_event_types_equal_the_ones_core_emits() -> None:
    schema = load_schema()
    assert schema["$defs"]["knownEventType"]["enum"] == list(EVENT_TYPES)
    assert set(EVENT_CLASSES) == set(EVENT_TYPES)
    branches = [branch["if"]["properties"]["event_type"]["const"] for branch in schema["allOf"]]
    assert sorted(branches) == sorted(EVENT_TYPES)
    for cls in EVENT_CLASSES.values():
        assert cls.default_event_type in branches


def test_token_data_is_the_token_attributes() -> None:
    token_data = load_schema()["$defs"]["tokenData"]
    attributes = {name for name, field in TokenEvent.model_fields.items() if field.exclude}
    assert set(token_data["required"]) == set(token_data["properties"]) == attributes
    assert set(_serialized_fields(TokenEvent)) == set(load_schema()["required"])


def test_error_and_end_data_cover_what_spans_write() -> None:
    defs = load_schema()["$defs"]
    written = set(error_data(ValueError("x")))
    assert set(defs["errorData"]["required"]) <= written <= set(defs["errorData"]["properties"])
    sink = streamll.MemorySink(name="spans")
    with Span("module", "M", sinks=(sink,)):
        pass
    sink.flush(5)
    end = sink.events[-1]
    sink.stop()
    assert set(defs["endData"]["required"]) <= set(end.data) <= set(defs["endData"]["properties"])


def test_schema_version_written_is_v1_and_other_majors_are_not() -> None:
    compiled = validator()
    assert compiled.is_valid({**_token_body(), "schema_version": SCHEMA_VERSION})
    assert not compiled.is_valid({**_token_body(), "schema_version": "2"})
    with pytest.raises(MalformedEventError):
        decode_event({**_token_body(), "schema_version": "2"})


# ---------------------------------------------------------------------- round trips and validation


@pytest.mark.parametrize(
    "event",
    [
        TokenEvent(execution_id="e", token="Hi", token_index=3, field="answer", finish_reason="stop"),
        StartEvent(execution_id="e", module_name="QA", operation="module", data={"inputs": {"q": "?"}}),
        EndEvent(execution_id="e", operation="lm", data={"duration_ms": 1.5, "usage": {"total_tokens": 9}}),
        ErrorEvent(execution_id="e", data={"error_type": "KeyError", "error_message": "'k'", "duration_ms": 0.1}),
        Event(event_type="retrieval_hit", execution_id="e", parent_id="p", sequence=4, tags={"user_id": "u"}),
        ToolStartEvent(execution_id="e", operation="tool", data={**TOOL, "arguments": {"a": 2}, "step": 1}),
        ToolEndEvent(execution_id="e", operation="tool", data={**TOOL, "duration_ms": 0.5, "result": "5"}),
        ToolErrorEvent(execution_id="e", data={**TOOL, "error_type": "KeyError", "error_message": "'x'"}),
        StatusEvent(execution_id="e", data={"message": "Calling tool add...", "stage": "tool_start"}),
    ],
    ids=lambda event: event.event_type,
)
def test_every_event_class_round_trips(event: Event) -> None:
    decoded = decode_event(encode_event(event))
    assert type(decoded) is type(event)
    assert decoded.model_dump() == event.model_dump()
    assert encode_event(decoded) == encode_event(event)
    if isinstance(event, TokenEvent):
        assert isinstance(decoded, TokenEvent)
        assert (decoded.token, decoded.token_index, decoded.field, decoded.finish_reason) == ("Hi", 3, "answer", "stop")
    validate_event(event)


def test_every_emitted_kind_is_valid() -> None:
    bodies = valid_bodies()
    kinds = {body["event_type"] for body in bodies}
    assert set(EVENT_TYPES) | {"retrieval_hit"} <= kinds
    for body in bodies:
        assert schema_errors(body) == [], body


def test_unencodable_data_still_gives_a_valid_body() -> None:
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    data = {"obj": object(), "raw": b"\xff", "nested": {"raw": b"\xfe"}, "cycle": cycle, "when": datetime.now(), "n": 1}
    event = Event(event_type="custom", execution_id="e", data=data, tags={"user": b"\xff"})
    body = json.loads(encode_event(event))
    validate_event(body)
    assert body["data"]["obj"].startswith("<object object")
    assert body["data"]["raw"] == body["tags"]["user"] == "\ufffd"
    assert body["data"]["cycle"] == "{'self': {...}}"
    assert body["data"]["n"] == 1


def test_an_unwritable_value_beside_a_writable_container_keeps_the_container() -> None:
    """Only the value that cannot be written becomes text; a list holding an opaque object stays a list."""

    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    event = Event(event_type="custom", execution_id="e", data={"raw": b"\xff", "items": [Opaque(), 1]})
    body = json.loads(encode_event(event))
    assert body["data"] == {"raw": "\ufffd", "items": ["<opaque>", 1]}


def test_a_lone_surrogate_is_written_as_the_replacement_character() -> None:
    """UTF-8 cannot carry half a surrogate pair (an LM's JSON reply may hold ``\\ud83d`` alone): like bytes that are
    not UTF-8 it becomes U+FFFD, and the rest of the text stays as it was."""
    event = TokenEvent(execution_id="e", token="a\ud83d b", field="answer", data={"note": ["x\udc00"], "n": 1})
    body = json.loads(encode_event(event))
    validate_event(body)
    assert (body["data"]["token"], body["data"]["note"], body["data"]["n"]) == ("a\ufffd b", "['x\\udc00']", 1)


@pytest.mark.parametrize("name", sorted(INVALID_BODIES))
def test_invalid_bodies_are_rejected(name: str) -> None:
    body = INVALID_BODIES[name]
    assert schema_errors(body), f"{name} was accepted"
    with pytest.raises(MalformedEventError, match="not a valid v1 event"):
        validate_event(body)


def test_validate_event_takes_events_dicts_and_json() -> None:
    event = TokenEvent(execution_id="e", token="a", field="answer")
    validate_event(event)
    validate_event(event_to_dict(event))
    validate_event(encode_event(event))
    validate_event(encode_event(event).decode())
    with pytest.raises(MalformedEventError, match="not JSON"):
        validate_event(b"{nope")


# ---------------------------------------------------------------------- CloudEvents


@pytest.mark.parametrize("prefix", ["ce_", "ce-"])
@pytest.mark.parametrize("event", example_events(), ids=lambda event: f"{event.operation}-{event.event_type}")
def test_cloudevents_headers_match_the_body(event: Event, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMLL_SOURCE", raising=False)
    headers = cloudevents.headers(event, prefix)
    assert headers[prefix + "id"] == event.event_id
    assert headers[prefix + "type"] == f"dev.streamll.{event.event_type}"
    assert headers[prefix + "specversion"] == "1.0"
    assert headers[prefix + "subject"] == event.execution_id
    assert headers[prefix + "source"] == f"/streamll/{event.module_name or 'app'}"  # the documented default
    assert headers[prefix + "streamllschemaversion"] == event.schema_version == "1"
    time = headers[prefix + "time"]
    assert RFC3339.match(time) and time.endswith("Z"), time  # UTC written as Z, never +00:00
    assert datetime.fromisoformat(time) == event.timestamp
    assert all(isinstance(value, str) for value in headers.values())


def test_cloudevents_source_is_streamll_source_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    event = make_event("custom", {"n": 1}, module_name="QA")[0]
    monkeypatch.setenv("STREAMLL_SOURCE", "urn:example:billing-service")
    assert cloudevents.headers(event, "ce-")["ce-source"] == "urn:example:billing-service"
    assert cloudevents.headers(event, "ce_")["ce_source"] == "urn:example:billing-service"
    monkeypatch.setenv("STREAMLL_SOURCE", "")  # empty means unset
    assert cloudevents.headers(event, "ce-")["ce-source"] == "/streamll/QA"


def test_cloudevents_source_without_a_module_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMLL_SOURCE", raising=False)
    event = Event(event_type="custom", execution_id="e", data={})
    assert cloudevents.attributes(event)["source"] == "/streamll/app"


# ---------------------------------------------------------------------- the suite-wide check itself

PLUGIN_PROBE = """
import pytest
import streamll
from streamll.core.events import EndEvent, TokenEvent


def _hand_over(event):
    sink = streamll.MemorySink(name="probe")
    sink.enqueue(event)
    assert sink.flush(5)
    sink.stop()


def test_valid():
    _hand_over(TokenEvent(execution_id="e", token="a", field="answer"))


def test_end_without_duration():
    _hand_over(EndEvent(execution_id="e"))


@pytest.mark.invalid_events_expected
def test_opted_out():
    _hand_over(EndEvent(execution_id="e"))
"""


def test_schema_check_plugin_fails_a_test_whose_events_break_the_schema(tmp_path: Path) -> None:
    (tmp_path / "test_probe.py").write_text(PLUGIN_PROBE)
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.schema_check", "-p", "no:cacheprovider", "-q", str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "3 passed, 1 error" in output, output  # the test ran, its teardown errors
    assert "ERROR at teardown of test_end_without_duration" in output, output
    assert "$.data: 'duration_ms' is a required property" in output, output
    assert "wire format: 3 events validated against event.v1.json, 1 invalid" in output, output


def test_tool_results_are_bounded_and_say_when_cut() -> None:
    short = result_summary({"a": 1})
    assert short == {"result": "{'a': 1}", "result_type": "dict"}
    long = result_summary("x" * (RESULT_LIMIT + 5))
    assert len(long["result"]) == RESULT_LIMIT
    assert long["result_truncated"] is True and long["result_length"] == RESULT_LIMIT + 5


def test_tool_events_carry_their_call_id_and_close_their_span() -> None:
    sink = streamll.MemorySink(name="tools")
    try:
        with Span("module", "Agent", sinks=(sink,)):
            span = ToolSpan("add", {"a": 2}, tool_call_id="call_7").open()
            inner = streamll.emit("inside_the_tool")
            span.close(5)
        assert sink.flush(5)
        start, end = sink.of_type("tool_start")[0], sink.of_type("tool_end")[0]
    finally:
        sink.stop()
    assert isinstance(start, ToolStartEvent) and isinstance(end, ToolEndEvent)
    assert start.data["tool_call_id"] == end.data["tool_call_id"] == "call_7"
    assert end.data["span_id"] == start.event_id == inner.parent_id
    assert end.data["result"] == "5" and end.data["duration_ms"] >= 0
