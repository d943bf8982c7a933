"""A group that changes under a running member: a rebalance, offsets reset by an operator, a start that cannot join."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import murmur2
from streamll.core.events import Event
from streamll.errors import ConsumerError
from streamll.testing.contract import make_execution_events, read, write
from streamll_kafka import KafkaSink, KafkaStreamConsumer

from tests.kafka.conftest import create_topic, unique

pytestmark = pytest.mark.kafka

FAST_GROUP = {"heartbeat_interval_ms": 100}
"""Members notice a rebalance within 0.1 s instead of aiokafka's default 3 s."""


def partition_of(event: Event, partitions: int) -> int:
    """Where the sink put ``event``: the Java client's murmur2 of its execution id."""
    return (murmur2(event.execution_id.encode()) & 0x7FFFFFFF) % partitions


async def committed(bootstrap: str, topic: str, group: str, partitions: int) -> dict[int, int | None]:
    """The group's committed offset per partition, as the broker has it."""
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await probe.start()
    await asyncio.sleep(0)
    try:
        return {p: await probe.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await probe.stop()


async def drain(*members: KafkaStreamConsumer, count: int, timeout: float = 20.0) -> list[list[Event]]:
    """What each member delivers until ``count`` events came in all and then nothing more for a moment."""
    delivered: list[list[Event]] = [[] for _ in members]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while sum(map(len, delivered)) < count:
        assert loop.time() < deadline, f"got {sum(map(len, delivered))} of {count} events"
        for member, into in zip(members, delivered, strict=True):
            event = await member.consume_one(timeout=0.05)
            if event is not None:
                into.append(event)
    for member, into in zip(members, delivered, strict=True):
        while (event := await member.consume_one(timeout=0.3)) is not None:
            into.append(event)
    return delivered


async def test_a_rebalance_drops_what_a_member_buffered_and_its_stale_acks_only_warn(
    kafka_bootstrap: str,
    url_for: Callable[..., str],
    make_sink: Callable[..., KafkaSink],
    caplog: pytest.LogCaptureFixture,
) -> None:
    topic = await create_topic(kafka_bootstrap, unique(), partitions=2)
    executions: list[list[Event]] = []
    while {partition_of(events[0], 2) for events in executions} != {0, 1}:
        executions.append(make_execution_events(3)[1])
    everything = [event for events in executions for event in events]
    await asyncio.to_thread(write, make_sink(url_for(topic)), everything)
    group = unique("g")
    url = url_for(topic, **FAST_GROUP)

    async with KafkaStreamConsumer(url, group=group, from_beginning=True) as first:
        seen: list[Event] = []
        while {partition_of(event, 2) for event in seen} != {0, 1}:
            seen += await read(first, 1)
        assert len(seen) < len(everything), "the first member holds records it has not delivered yet"
        async with KafkaStreamConsumer(url, group=group, from_beginning=True) as second:
            # The second member's start waited for the rebalance: the first gave up both partitions and got one back.
            after = await drain(first, second, count=len(everything))
            counts = Counter(event.event_id for member in after for event in member)
            assert counts == Counter(event.event_id for event in everything), "an event delivered twice or never"
            assert all(member for member in after), "the partitions were not shared"

            with caplog.at_level(logging.WARNING, logger="streamll.kafka"):
                for event in seen:  # delivered before the rebalance; one partition now belongs to the second
                    await first.ack(event)
            assert first.stats.acked == len(seen)
            kept = partition_of(after[0][0], 2)
            lost = [event for event in seen if partition_of(event, 2) != kept]
            warnings = [record.getMessage() for record in caplog.records if record.name == "streamll.kafka"]
            assert len(warnings) == len(lost)
            for warning in warnings:
                lost_partition = f"TopicPartition(topic={topic!r}, partition={1 - kept})"
                assert warning.startswith(f"streamll kafka consumer: commit of {lost_partition} offset "), warning
                assert "failed after a rebalance (" in warning
                assert warning.endswith("); the group will deliver it again")
            assert (first.stats.last_error or "").startswith(("IllegalStateError: ", "CommitFailedError: "))
    kept_seen = sum(1 for event in seen if partition_of(event, 2) == kept)
    assert await committed(kafka_bootstrap, topic, group, 2) == {kept: kept_seen, 1 - kept: None}


async def test_a_restarted_member_commits_again_after_an_operator_rewinds_the_group(
    kafka_bootstrap: str, topic: str, url_for: Callable[..., str], make_sink: Callable[..., KafkaSink]
) -> None:
    _, events = make_execution_events(2)
    await asyncio.to_thread(write, make_sink(url_for(topic)), events)
    group = unique("g")
    member = KafkaStreamConsumer(url_for(topic), group=group, from_beginning=True)
    async with member:
        for event in await read(member, len(events)):
            await member.ack(event)
    assert await committed(kafka_bootstrap, topic, group, 1) == {0: len(events)}

    # what `kafka-consumer-groups --reset-offsets --to-earliest` does while the group is empty
    rewind = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await rewind.start()
    try:
        rewind.assign([TopicPartition(topic, 0)])
        await rewind.commit({TopicPartition(topic, 0): 0})
    finally:
        await rewind.stop()

    async with member:
        again = await read(member, 2)
        assert [event.event_id for event in again] == [event.event_id for event in events[:2]]
        await member.ack(again[1])
    assert await committed(kafka_bootstrap, topic, group, 1) == {0: 2}


async def test_a_member_that_cannot_join_its_group_in_start_timeout_fails_clearly_and_leaves_nothing_running(
    topic: str, url_for: Callable[..., str]
) -> None:
    """A group join takes a few round trips and the broker's rebalance delay: 10 ms is never enough."""
    group = unique("g")
    consumer = KafkaStreamConsumer(url_for(topic, start_timeout=0.01), group=group)
    running = asyncio.all_tasks()
    with pytest.raises(ConsumerError) as caught:
        await consumer.start()
    assert str(caught.value) == (
        f"no partition assignment from group {group!r} for topic {topic!r} on {consumer.options.display_url} "
        "within 0.01s (does the topic exist? does the broker auto-create topics?)"
    )
    assert not consumer.is_started
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - running == set(), "the failed start left the client's tasks running"
