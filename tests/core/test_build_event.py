"""build_event's fast path builds exactly the event that validation would, and only skips the validating.

The per-token hot path builds events without pydantic when every value already
has its declared type. Differential: for well- and ill-typed inputs alike, the
event (or the error) equals what ``cls(...)`` gives; for well-typed inputs the
fast path is the one taken (the event owns the caller's ``data`` and ``tags``).
"""

from __future__ import annotations

import copy
import os
import pickle
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from streamll.core import ids as ids_module
from streamll.core.events import EndEvent, ErrorEvent, Event, StartEvent, TokenEvent, build_event, new_event_id

KINDS = [(TokenEvent, "token"), (Event, "custom"), (StartEvent, "start"), (EndEvent, "end"), (ErrorEvent, "error")]
MISMATCHED = [(StartEvent, "end"), (EndEvent, "start"), (ErrorEvent, "custom"), (TokenEvent, "custom")]
ID = re.compile(r"^[0-9a-f]{32}$")


def shape(event: Event) -> tuple[Any, ...]:
    """Everything but the per-event id and time, token attributes included."""
    body = event.model_dump()
    del body["event_id"], body["timestamp"]
    extra = tuple(getattr(event, name, None) for name in ("token", "token_index", "field", "finish_reason"))
    return type(event), body, extra, event.model_fields_set >= {"event_type", "data", "tags"}


def validated(cls: type[Event], *args: Any) -> Event | type[BaseException]:
    event_type, execution_id, parent_id, sequence, data, tags, fields = args
    try:
        return cls(
            event_type=event_type,
            execution_id=execution_id,
            parent_id=parent_id,
            sequence=sequence,
            data=data,
            tags=tags,
            **fields,
        )
    except ValidationError:
        return ValidationError


def built(cls: type[Event], *args: Any) -> Event | type[BaseException]:
    try:
        return build_event(cls, *args)
    except ValidationError:
        return ValidationError


def assert_same(cls: type[Event], *args: Any) -> Event | type[BaseException]:
    expected = validated(cls, *copy.deepcopy(args))
    before = datetime.now(UTC)
    got = built(cls, *copy.deepcopy(args))
    if isinstance(expected, type):
        assert got is expected
        return got
    assert isinstance(got, Event), got
    assert shape(got) == shape(expected)
    assert ID.match(got.event_id) and got.event_id != expected.event_id
    assert got.timestamp.tzinfo is UTC and before <= got.timestamp <= datetime.now(UTC)
    return got


text = st.text(alphabet="abc", max_size=3)
maybe_text = st.one_of(st.none(), text, st.integers(-2, 2))
values = st.one_of(st.none(), text, st.integers(-2, 5), st.booleans(), st.floats(allow_nan=False))
keys = st.one_of(text, st.integers(0, 3), st.none())
mappings = st.dictionaries(keys, values, max_size=3)
token_data = st.fixed_dictionaries(
    {}, optional={"token": values, "token_index": values, "field": values, "finish_reason": values}
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "module_name": maybe_text,
        "method_name": maybe_text,
        "operation": maybe_text,
        "token": values,
        "token_index": values,
        "field": values,
        "finish_reason": values,
        "unknown_field": values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(KINDS + MISMATCHED),
    execution_id=st.one_of(text, st.integers(0, 2)),
    parent_id=maybe_text,
    sequence=st.one_of(st.integers(0, 9), st.booleans(), st.sampled_from(["3", "x"])),
    data=st.one_of(mappings, token_data),
    tags=mappings,
    fields=fields,
)
def test_fast_path_equals_validation(
    kind: tuple[type[Event], str],
    execution_id: Any,
    parent_id: Any,
    sequence: Any,
    data: dict[Any, Any],
    tags: dict[Any, Any],
    fields: dict[str, Any],
) -> None:
    cls, event_type = kind
    assert_same(cls, event_type, execution_id, parent_id, sequence, data, tags, fields)


@pytest.mark.parametrize(("cls", "event_type"), KINDS)
def test_well_typed_values_take_the_fast_path(cls: type[Event], event_type: str) -> None:
    """The event owns the caller's dicts (validation would copy them); values land where they belong."""
    data: dict[str, Any] = {"k": 1}
    tags: dict[str, Any] = {"user": "u"}
    fields: dict[str, Any] = {"module_name": "QA", "method_name": "forward", "operation": "module"}
    if cls is TokenEvent:
        fields |= {"token": "hi", "token_index": 3, "field": "answer", "finish_reason": "stop"}
    event = assert_same(cls, event_type, "exec", "parent", 7, copy.deepcopy(data), dict(tags), dict(fields))
    assert isinstance(event, Event)
    owned = build_event(cls, event_type, "exec", "parent", 7, data, tags, fields)
    assert owned.data is data and owned.tags is tags
    assert (owned.execution_id, owned.parent_id, owned.sequence) == ("exec", "parent", 7)
    assert (owned.module_name, owned.method_name, owned.operation) == ("QA", "forward", "module")
    assert owned.schema_version == "1" and owned.event_type == event_type
    if cls is TokenEvent:
        assert isinstance(owned, TokenEvent)
        assert (owned.token, owned.token_index, owned.field, owned.finish_reason) == ("hi", 3, "answer", "stop")
        assert data == {"k": 1, "token": "hi", "token_index": 3, "field": "answer", "finish_reason": "stop"}


def test_token_attributes_come_from_data_when_not_given() -> None:
    data: dict[str, Any] = {"token": "x", "token_index": 4, "field": "answer", "finish_reason": "stop"}
    event = build_event(TokenEvent, "token", "e", None, 0, data, {}, {})
    assert isinstance(event, TokenEvent) and event.data is data
    assert (event.token, event.token_index, event.field, event.finish_reason) == ("x", 4, "answer", "stop")
    nothing: dict[str, Any] = {}
    empty = build_event(TokenEvent, "token", "e", None, 0, nothing, {}, {})
    assert isinstance(empty, TokenEvent) and empty.data is nothing  # the defaults need no validation either
    assert (empty.token, empty.token_index, empty.field, empty.finish_reason) == ("", 0, "", None)


def test_a_fast_built_event_behaves_like_any_other() -> None:
    """Copying, pickling and comparing work on an event that skipped validation."""
    event = build_event(Event, "custom", "e", "p", 1, {"k": 1}, {"t": "v"}, {"module_name": "QA"})
    twin = Event(**event.model_dump())
    assert copy.deepcopy(event) == event == twin and event.model_copy() == event
    assert pickle.loads(pickle.dumps(event)) == event
    assert event.model_dump() == twin.model_dump()


def test_ill_typed_values_are_validated_like_the_model() -> None:
    """A str sequence is converted, an int key becomes text, a str token_index in data is converted."""
    event = build_event(Event, "custom", "e", None, "3", {1: "one"}, {None: "n"}, {})  # type: ignore[arg-type]
    assert event.sequence == 3 and event.data == {"1": "one"} and event.tags == {"null": "n"}
    token = build_event(TokenEvent, "token", "e", "p", 0, {"token_index": "2", "token": "t"}, {}, {})
    assert isinstance(token, TokenEvent) and token.token_index == 2 and token.data["token_index"] == 2
    assert token.parent_id == "p" and token.execution_id == "e"
    only_tags = build_event(Event, "custom", "e", None, 0, {"ok": 1}, {1: "x"}, {})  # type: ignore[dict-item]
    assert only_tags.tags == {"1": "x"} and only_tags.data == {"ok": 1}

    class NoRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    odd = build_event(Event, "custom", "e", None, 0, {NoRepr(): 1}, {}, {})  # type: ignore[dict-item]
    assert odd.data == {"<unrepresentable NoRepr>": 1}
    with pytest.raises(ValidationError):
        build_event(StartEvent, "end", "e", None, 0, {}, {}, {})


@pytest.mark.parametrize(("cls", "event_type"), KINDS)
@pytest.mark.parametrize(
    "bad",
    [
        {"fields": {"module_name": 1}},
        {"fields": {"method_name": 1}},
        {"fields": {"operation": 1}},
        {"parent_id": 1},
        {"execution_id": 1},
    ],
    ids=["module_name", "method_name", "operation", "parent_id", "execution_id"],
)
def test_a_mistyped_text_field_is_a_validation_error_like_the_model(
    cls: type[Event], event_type: str, bad: dict[str, Any]
) -> None:
    """Every other value well typed: the one int where text belongs is rejected, never stored as an int."""
    args: dict[str, Any] = {"execution_id": "e", "parent_id": None, "fields": {}} | bad
    with pytest.raises(ValidationError):
        build_event(cls, event_type, args["execution_id"], args["parent_id"], 0, {}, {}, args["fields"])


def test_event_ids_are_32_hex_digits_unique_and_prefixed_per_process() -> None:
    ids = [new_event_id() for _ in range(1000)]
    assert all(ID.match(event_id) for event_id in ids) and len(set(ids)) == 1000
    prefix = ids_module._id_prefix
    assert len(prefix) == 16 and {event_id[:16] for event_id in ids} == {prefix}
    counters = [int(event_id[16:], 16) for event_id in ids]
    assert counters == list(range(counters[0], counters[0] + 1000)) or counters[0] > 2**64 - 1000


def test_a_new_prefix_starts_a_fresh_counter() -> None:
    """What a forked child runs: 64 new random bits, and a counter from 32 random bits."""
    before = new_event_id()
    ids_module._new_id_prefix()
    after = [new_event_id() for _ in range(3)]
    assert all(ID.match(event_id) for event_id in after)
    assert after[0][:16] == ids_module._id_prefix != before[:16]
    counters = [int(event_id[16:], 16) for event_id in after]
    assert counters == [counters[0], counters[0] + 1, counters[0] + 2] and counters[0] < 2**32


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_a_prefix_of_its_own() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report one id and leave at once, whatever happens
        try:
            os.write(write, new_event_id().encode())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert ID.match(child) and child[:16] != new_event_id()[:16]
