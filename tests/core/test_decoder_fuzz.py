"""Any bytes a transport hands a consumer decode to an event or to a counted, skipped malformed message.

Property tests of the one decoder every consumer shares; bounded (``max_examples``,
no per-example deadline on a shared CI machine) so they run in the default suite.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamll.consumer import BaseConsumer, Received
from streamll.core.events import EVENT_CLASSES, Event
from streamll.core.serialization import decode_event, encode_event
from streamll.errors import MalformedEventError
from streamll.testing.contract import POISON

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
timestamps = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.builds(
        lambda d, sign, hours, minutes: f"{d.isoformat()}{sign}{hours:02d}:{minutes:02d}",
        st.datetimes(),
        st.sampled_from("+-"),
        st.integers(0, 23),
        st.integers(0, 59),
    ),
    st.sampled_from(["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "0001-01-01", "9999-12-31T23:59:59Z"]),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
)
FIELDS = [
    "event_id",
    "execution_id",
    "parent_id",
    "sequence",
    "module_name",
    "method_name",
    "operation",
    "data",
    "tags",
    "token",
    "token_index",
    "field",
    "finish_reason",
]
event_like = st.fixed_dictionaries(
    {"event_type": st.sampled_from([*EVENT_CLASSES, "x", ""]) | st.text(max_size=10), "timestamp": timestamps},
    optional={
        "schema_version": st.sampled_from(["1", "1.0", "2", 1, 1.5]) | json_values,
        **{name: json_values for name in FIELDS},
    },
)


def decodes_or_is_malformed(body: bytes | str) -> Event | None:
    """The decoder's contract: an event, or MalformedEventError; nothing else escapes."""
    try:
        event = decode_event(body)
    except MalformedEventError:
        return None
    assert isinstance(event, Event)
    return event


@pytest.mark.parametrize("body", POISON, ids=["deep-array", "year-1-east-of-utc", "year-9999-west-of-utc"])
def test_known_poison_bodies_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedEventError):
        decode_event(body)


@FUZZ
@given(st.binary(max_size=512))
def test_any_bytes_decode_or_are_malformed(body: bytes) -> None:
    decodes_or_is_malformed(body)


@FUZZ
@given(st.text(alphabet=st.sampled_from('[]{}":,0123456789.eE+-truefalsn \\u'), max_size=300))
def test_json_punctuation_decodes_or_is_malformed(text: str) -> None:
    decodes_or_is_malformed(text)
    decodes_or_is_malformed(text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(event_like)
def test_event_shaped_objects_decode_or_are_malformed(body: dict[str, Any]) -> None:
    raw = json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass")
    event = decodes_or_is_malformed(raw)
    if event is not None:
        # what was accepted can be written again: a consumer that forwards it does not crash
        again = decode_event(encode_event(event))
        assert again.event_id == event.event_id


@FUZZ
@given(st.integers(min_value=1, max_value=50_000), st.sampled_from("[{"))
def test_deep_nesting_is_malformed_or_an_event(depth: int, opener: str) -> None:
    inner = '{"a":' * depth + "1" + "}" * depth if opener == "{" else "[" * depth + "]" * depth
    decodes_or_is_malformed(f'{{"event_type":"x","data":{{"v":{inner}}}}}')
    decodes_or_is_malformed(opener * depth)


@FUZZ
@given(st.datetimes(), st.integers(-23, 23))
def test_any_offset_timestamp_decodes_or_is_malformed(moment: datetime, hours: int) -> None:
    stamp = f"{moment.isoformat()}{'+' if hours >= 0 else '-'}{abs(hours):02d}:00"
    decodes_or_is_malformed(json.dumps({"event_type": "x", "timestamp": stamp}))


class _Consumer(BaseConsumer[int]):
    """A consumer over a list of bodies: the shared decode / skip / ack path without a broker."""

    def __init__(self, bodies: list[bytes]) -> None:
        super().__init__()
        self.bodies = list(bodies)
        self.acked: list[int] = []

    async def _connect(self) -> None:
        pass

    async def _disconnect(self) -> None:
        pass

    async def _receive(self, timeout: float | None) -> Received[int] | None:
        if not self.bodies:
            self._started = False
            return None
        index = len(self.acked) + self.stats.consumed
        return Received(self.bodies.pop(0), index)

    async def _ack_message(self, handle: int) -> None:
        self.acked.append(handle)


@FUZZ
@given(st.lists(st.binary(max_size=64) | st.sampled_from(POISON), max_size=8))
async def test_a_consumer_skips_and_acks_whatever_it_cannot_decode(bodies: list[bytes]) -> None:
    event = Event(event_type="token", execution_id="e")
    consumer = _Consumer([*bodies, encode_event(event)])
    await consumer.start()
    received = [item async for item in consumer]
    assert [item.event_id for item in received][-1:] == [event.event_id]
    assert consumer.stats.malformed + len(received) == len(bodies) + 1
    assert len(consumer.acked) == consumer.stats.malformed
