"""The relay on NATS JetStream (a subject per execution), with real uvicorn processes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from streamll_nats import NatsSink

from tests.web.support import Producer, RelayProcess, read_sse, streamed_text

pytestmark = pytest.mark.nats


@pytest.fixture
def sink(nats_source: str) -> Iterator[NatsSink]:
    sink = NatsSink(nats_source)
    yield sink
    sink.stop(timeout=5)


def events_url(relay: RelayProcess, execution_id: str) -> str:
    return f"{relay.base}/executions/{execution_id}/events"


def test_resume_on_a_second_replica_and_join_after_completion(
    nats_source: str, nats_relay: RelayProcess, sink: NatsSink, slow_lm: Any, relays: Callable[..., RelayProcess]
) -> None:
    other = Producer(sink, slow_lm, question="Another question?").start()  # a second execution on the same stream
    producer = Producer(sink, slow_lm).start()
    first_relay = relays(nats_source)
    first = read_sse(events_url(first_relay, producer.execution_id), stop_after=12)
    first_relay.stop()
    rest = read_sse(events_url(nats_relay, producer.execution_id), headers={"Last-Event-ID": first.frames[-1].id})
    prediction = producer.join()
    other.join()

    frames = first.frames + rest.frames
    events = [frame.json() for frame in frames]
    assert rest.ended
    assert [event["sequence"] for event in events] == list(range(len(events)))
    assert {event["execution_id"] for event in events} == {producer.execution_id}
    assert streamed_text(events, "answer") == prediction.answer

    again = read_sse(events_url(nats_relay, producer.execution_id), timeout=20)
    assert again.ended and [frame.json() for frame in again.frames] == events

    listed = {item["execution_id"]: item for item in httpx.get(nats_relay.base + "/executions").json()["executions"]}
    assert listed[producer.execution_id]["finished"] and listed[other.execution_id]["finished"]
    assert listed[producer.execution_id]["events"] == len(events)


async def test_a_consumer_given_the_per_execution_url_reads_every_execution(
    nats_source: str, sink: NatsSink, slow_lm: Any
) -> None:
    from streamll_nats import NatsStreamConsumer

    first, second = Producer(sink, slow_lm).start(), Producer(sink, slow_lm, question="Why?").start()
    await asyncio.to_thread(first.join)
    await asyncio.to_thread(second.join)
    wanted = {first.execution_id, second.execution_id}
    closed: set[str] = set()
    async with NatsStreamConsumer(nats_source, from_beginning=True) as consumer:
        assert consumer.subject.endswith(".>")
        while not wanted <= closed:
            event = await consumer.consume_one(timeout=20)
            assert event is not None, f"the consumer stopped short: closed {closed} of {wanted}"
            if event.event_type == "end" and event.parent_id is None:
                closed.add(event.execution_id)
