"""Reading and writing 0.1's Redis entry layout (``__data__``: a FastStream message) without a server."""

from __future__ import annotations

import json
import struct

import pytest
from streamll.core.events import EndEvent, StartEvent, TokenEvent
from streamll.core.serialization import decode_event
from streamll.errors import MalformedEventError
from streamll.v01 import from_v01, to_v01
from streamll_redis.entries import entry_body
from streamll_redis.legacy import BINARY_MAGIC, LegacyRedisSink, legacy_envelope

V01_TOKEN = {
    "event_id": "kyu7G7zWnFB-",
    "execution_id": "b063388c1e1e4c038138e5affb5bfa68",
    "timestamp": "2026-12-02T17:58:14.552466Z",
    "module_name": "QA",
    "method_name": "predict",
    "event_type": "token",
    "operation": None,
    "data": {"field": "answer", "token": "Machine", "token_index": 0},
    "tags": {},
}


def binary_v1(body: bytes, headers: dict[str, str]) -> bytes:
    """FastStream's binary message format v1 (what FastStream 0.6+ writes)."""
    encoded = b"".join(
        struct.pack(">H", len(part)) + part for key, value in headers.items() for part in (key.encode(), value.encode())
    )
    headers_start = len(BINARY_MAGIC) + 2 + 8
    data_start = 2 + headers_start + len(encoded)
    return (
        BINARY_MAGIC
        + struct.pack(">H", 1)
        + struct.pack(">I", headers_start)
        + struct.pack(">I", data_start)
        + struct.pack(">H", len(headers))
        + encoded
        + body
    )


@pytest.mark.parametrize("layout", ["binary", "json"])
def test_a_0_1_entry_decodes_to_the_v1_event(layout: str) -> None:
    body = json.dumps(V01_TOKEN).encode()
    headers = {"correlation_id": "c", "content-type": "application/json"}
    raw = binary_v1(body, headers) if layout == "binary" else json.dumps({"data": body.decode(), "headers": headers})
    event = decode_event(entry_body({b"__data__": raw}))
    assert isinstance(event, TokenEvent)
    assert (event.token, event.field, event.token_index, event.event_id) == ("Machine", "answer", 0, "kyu7G7zWnFB-")


def test_a_deeply_nested_0_1_value_is_handed_on_as_it_is() -> None:
    raw = b"[" * 100_000
    assert entry_body({b"__data__": raw}) == raw  # the decoder reports it as malformed


def test_the_data_field_wins_when_an_entry_has_both_layouts() -> None:
    assert entry_body({b"data": b"{}", b"__data__": b"ignored"}) == b"{}"


@pytest.mark.parametrize("raw", [b"", b"\xff\xfe", BINARY_MAGIC + b"\x00", b'{"data": 3}', b"[1, 2]"])
def test_anything_else_in_data_is_a_malformed_message_not_a_crash(raw: bytes) -> None:
    with pytest.raises(MalformedEventError):
        decode_event(entry_body({b"__data__": raw}))


def test_0_1_lm_events_and_durations_are_translated() -> None:
    start = from_v01({"event_type": "llm_start", "operation": "generate", "data": {}})
    end = from_v01({"event_type": "end", "data": {"duration": 0.5}})
    assert (start["event_type"], start["operation"]) == ("start", "lm")
    assert end["data"]["duration_ms"] == 500


def test_the_0_1_view_is_what_0_1_consumers_validate() -> None:
    lm_end = EndEvent(operation="lm", module_name=None, data={"duration_ms": 1500.0}, tags={"user": 7})
    view = to_v01(lm_end)
    assert (view["event_type"], view["operation"]) == ("llm_end", "generate")
    assert view["module_name"] == "unknown" and view["method_name"] == "forward"
    assert view["tags"] == {"user": "7"} and view["data"]["user"] == 7 and view["data"]["duration"] == 1.5
    start = StartEvent(operation="module", module_name="QA", tags={"conversation_id": "c"}, data={"inputs": {}})
    envelope = json.loads(legacy_envelope(start))
    assert envelope["headers"]["content-type"] == "application/json"
    assert json.loads(envelope["data"])["data"] == {"inputs": {}, "conversation_id": "c"}


def test_the_legacy_sink_writes_both_layouts_unless_told_not_to() -> None:
    event = StartEvent(operation="module", module_name="QA")
    both = LegacyRedisSink("redis://localhost:6379", "s").entry_fields(event)
    assert set(both) == {"data", "event_type", "execution_id", "__data__"}
    only_v1 = LegacyRedisSink("redis://localhost:6379", "s", legacy_layout=False).entry_fields(event)
    assert "__data__" not in only_v1
