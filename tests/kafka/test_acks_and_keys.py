"""Kafka commits per acknowledged event, acks without a group, and events outside any execution (no key)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from streamll.core.emitter import make_event
from streamll.core.serialization import decode_event
from streamll.testing.contract import make_execution_events, read, write
from streamll_kafka import KafkaSink, KafkaStreamConsumer

from tests.kafka.conftest import read_records, unique

pytestmark = pytest.mark.kafka


async def committed_offset(bootstrap: str, topic: str, group: str) -> int | None:
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await probe.start()
    await asyncio.sleep(0)
    try:
        return await probe.committed(TopicPartition(topic, 0))  # type: ignore[no-any-return]
    finally:
        await probe.stop()


async def test_acking_the_first_event_commits_offset_one(
    kafka_bootstrap: str, topic: str, url_for: Callable[..., str], make_sink: Callable[..., KafkaSink]
) -> None:
    _, events = make_execution_events(1)
    await asyncio.to_thread(write, make_sink(url_for(topic)), events)
    group = unique("g")
    async with KafkaStreamConsumer(url_for(topic), group=group, from_beginning=True) as consumer:
        first = (await read(consumer, 1))[0]
        await consumer.ack(first)
        assert await committed_offset(kafka_bootstrap, topic, group) == 1
    async with KafkaStreamConsumer(url_for(topic), group=group) as consumer:
        rest = await read(consumer, len(events) - 1)
    assert [event.event_id for event in rest] == [event.event_id for event in events[1:]]


async def test_acks_without_a_group_are_counted_and_commit_nothing(
    topic: str, url_for: Callable[..., str], make_sink: Callable[..., KafkaSink]
) -> None:
    _, events = make_execution_events(1)
    await asyncio.to_thread(write, make_sink(url_for(topic)), events)
    async with KafkaStreamConsumer(url_for(topic), from_beginning=True) as consumer:
        for event in await read(consumer, len(events)):
            await consumer.ack(event)
        assert consumer.stats.acked == len(events)


async def test_an_event_outside_any_execution_is_produced_without_a_key(
    kafka_bootstrap: str, topic: str, url_for: Callable[..., str], make_sink: Callable[..., KafkaSink]
) -> None:
    loose = make_event("custom", {"n": 1})[0].model_copy(update={"execution_id": ""})
    keyed, _ = make_event("custom", {"n": 2})
    await asyncio.to_thread(write, make_sink(url_for(topic)), [loose, keyed])
    records = await read_records(kafka_bootstrap, topic, 2)
    assert [(record.key, decode_event(record.value).event_id) for record in records] == [
        (None, loose.event_id),
        (keyed.execution_id.encode(), keyed.event_id),
    ]


async def test_a_consumer_without_a_group_starts_again_after_stop(
    topic: str, url_for: Callable[..., str], make_sink: Callable[..., KafkaSink]
) -> None:
    consumer = KafkaStreamConsumer(url_for(topic), from_beginning=True)
    _, events = make_execution_events(0)
    await asyncio.to_thread(write, make_sink(url_for(topic)), events)
    for _ in range(2):
        async with consumer:
            assert [event.event_id for event in await read(consumer, len(events))] == [e.event_id for e in events]


async def test_a_short_timeout_on_an_idle_topic_is_kept(topic: str, url_for: Callable[..., str]) -> None:
    async with KafkaStreamConsumer(url_for(topic)) as consumer:
        started = time.monotonic()
        assert await consumer.consume_one(timeout=0.1) is None
        assert time.monotonic() - started < 0.8
