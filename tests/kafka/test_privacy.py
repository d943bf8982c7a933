"""configure(redact=...) runs before events leave the process: what it removes never reaches Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import streamll
from streamll.core.events import Event, TokenEvent
from streamll_kafka import KafkaSink

from tests.kafka.conftest import read_records

pytestmark = pytest.mark.kafka

SECRET = "Jane Roe 1970-01-01"


def redact(event: Event) -> Event | None:
    if isinstance(event, TokenEvent) and event.field == "diagnosis":
        return None
    if "patient" in event.data:
        event.data["patient"] = "[redacted]"
    event.tags.pop("patient_name", None)
    return event


async def test_redacted_fields_tokens_and_ids_never_reach_the_topic(
    kafka_bootstrap: str, topic: str, url_for: Callable[..., str]
) -> None:
    sink = KafkaSink(url_for(topic))

    def produce() -> None:
        with streamll.configure(sinks=[sink], redact=redact):
            streamll.set_context(patient_name=SECRET, request_id="r1")
            try:
                with streamll.trace("triage", data={"patient": SECRET}) as span:
                    for index, word in enumerate(SECRET.split(" ")):
                        span.emit("token", cls=TokenEvent, token=word, token_index=index, field="diagnosis")
                    span.emit("token", cls=TokenEvent, token="Rest.", token_index=0, field="advice")
            finally:
                streamll.set_context(patient_name=None, request_id=None)
            assert sink.flush(20), sink.stats

    try:
        await asyncio.to_thread(produce)
    finally:
        await asyncio.to_thread(sink.stop, 5)
    records = await read_records(kafka_bootstrap, topic, 3)  # start, the advice token, end
    assert len(records) == 3 and sink.stats.delivered == 3
    for record in records:
        raw = record.value + b"".join(value for _key, value in record.headers or ())
        assert SECRET.encode() not in raw and b"Jane" not in raw
    assert b'"token":"Rest."' in records[1].value and b'"request_id":"r1"' in records[1].value
