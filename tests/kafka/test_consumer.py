"""KafkaStreamConsumer on a real broker: group commits and resume, "latest" positioning, malformed records."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from click.testing import CliRunner
from streamll.cli import main
from streamll.consumer import KafkaStreamConsumer as FromCore
from streamll.core.serialization import encode_event
from streamll.errors import ConsumerError
from streamll.testing.contract import make_execution_events, read, write
from streamll_kafka import KafkaSink, KafkaStreamConsumer

from tests.helpers import assert_one_line_error, exit_with_sinks, free_port, run_cli
from tests.kafka.conftest import create_topic, produce_raw, unique

pytestmark = pytest.mark.kafka


async def committed(bootstrap: str, topic: str, group: str, partitions: int = 1) -> dict[int, int | None]:
    """The group's committed offset per partition, as the broker has it."""
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await probe.start()
    await asyncio.sleep(0)
    try:
        return {p: await probe.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await probe.stop()


async def test_importable_from_core() -> None:
    assert FromCore is KafkaStreamConsumer


async def test_group_commits_offset_plus_one_on_ack_and_a_restarted_member_resumes(
    kafka_bootstrap: str, topic: str, url_for: Callable[..., str], make_sink: Callable[..., KafkaSink]
) -> None:
    _, events = make_execution_events(8)
    sink = make_sink(url_for(topic))
    await asyncio.to_thread(write, sink, events)
    group = unique("g")

    async with KafkaStreamConsumer(url_for(topic), group=group, from_beginning=True) as consumer:
        seen = await read(consumer, 6)
        assert await committed(kafka_bootstrap, topic, group) == {0: None}, "nothing is committed before an ack"
        for event in seen[:4]:
            await consumer.ack(event)
        assert await committed(kafka_bootstrap, topic, group) == {0: 4}
        assert consumer.stats.acked == 4
    # Events 5 and 6 were read but never acknowledged: the group delivers them again.
    async with KafkaStreamConsumer(url_for(topic), group=group) as consumer:
        rest = await read(consumer, len(events) - 4)
        assert await consumer.consume_one(timeout=0.3) is None
        await consumer.ack(rest[-1])
    assert [e.event_id for e in rest] == [e.event_id for e in events[4:]]
    assert await committed(kafka_bootstrap, topic, group) == {0: len(events)}

    async with KafkaStreamConsumer(url_for(topic), group=group, from_beginning=True) as consumer:
        assert await consumer.consume_one(timeout=0.3) is None, "an acknowledged group starts after its commit"


async def test_acking_an_older_event_never_moves_the_commit_back(
    kafka_bootstrap: str, topic: str, url_for: Callable[..., str], make_sink: Callable[..., KafkaSink]
) -> None:
    _, events = make_execution_events(2)
    sink = make_sink(url_for(topic))
    await asyncio.to_thread(write, sink, events)
    group = unique("g")
    async with KafkaStreamConsumer(url_for(topic), group=group, from_beginning=True) as consumer:
        first, second, third = await read(consumer, 3)
        await consumer.ack(third)
        await consumer.ack(first)
        with pytest.raises(ConsumerError, match="already acked"):
            await consumer.ack(first)
    with pytest.raises(ConsumerError, match="stopped"):
        await consumer.ack(second)
    assert await committed(kafka_bootstrap, topic, group) == {0: 3}


async def test_group_members_share_partitions(
    kafka_bootstrap: str, url_for: Callable[..., str], make_sink: Callable[..., KafkaSink]
) -> None:
    topic = await create_topic(kafka_bootstrap, unique(), partitions=2)
    group = unique("g")
    executions = [make_execution_events(3)[1] for _ in range(8)]
    one = KafkaStreamConsumer(url_for(topic), group=group, from_beginning=True)
    two = KafkaStreamConsumer(url_for(topic), group=group, from_beginning=True)
    await one.start()
    try:
        await two.start()
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while len(one._consumer.assignment()) != 1 or len(two._consumer.assignment()) != 1:  # type: ignore[union-attr]
                assert loop.time() < deadline, "the group did not split the partitions"
                await one.consume_one(timeout=0.05)
            sink = make_sink(url_for(topic))
            everything = [event for events in executions for event in events]
            await asyncio.to_thread(write, sink, everything)
            received: dict[str, Any] = {}
            while len(received) < len(everything):
                assert loop.time() < deadline, f"got {len(received)} of {len(everything)}"
                for member, name in ((one, "one"), (two, "two")):
                    event = await member.consume_one(timeout=0.05)
                    if event is not None:
                        received[event.event_id] = (name, event.execution_id)
        finally:
            await two.stop()
    finally:
        await one.stop()
    assert set(received) == {event.event_id for event in everything}
    members_by_execution: dict[str, set[str]] = {}
    for name, execution_id in received.values():
        members_by_execution.setdefault(execution_id, set()).add(name)
    assert all(len(names) == 1 for names in members_by_execution.values()), "one execution, one member"
    assert {name for names in members_by_execution.values() for name in names} == {"one", "two"}


async def test_latest_is_positioned_before_start_returns_on_every_partition(
    kafka_bootstrap: str, url_for: Callable[..., str]
) -> None:
    topic = await create_topic(kafka_bootstrap, unique(), partitions=3)
    old = [make_execution_events(1)[1] for _ in range(6)]
    for events in old:
        await produce_raw(kafka_bootstrap, topic, *map(encode_event, events), key=events[0].execution_id.encode())
    new = [make_execution_events(1)[1] for _ in range(6)]
    async with KafkaStreamConsumer(url_for(topic), from_beginning=False) as consumer:
        for events in new:
            await produce_raw(kafka_bootstrap, topic, *map(encode_event, events), key=events[0].execution_id.encode())
        received = await read(consumer, sum(map(len, new)))
        assert await consumer.consume_one(timeout=0.3) is None
    assert {e.event_id for e in received} == {e.event_id for events in new for e in events}


async def test_a_topic_created_after_start_is_read_from_its_first_record(
    kafka_bootstrap: str, url_for: Callable[..., str], make_sink: Callable[..., KafkaSink]
) -> None:
    topic = unique("late")
    async with KafkaStreamConsumer(url_for(topic)) as consumer:
        _, events = make_execution_events(3)
        sink = make_sink(url_for(topic))
        await asyncio.to_thread(write, sink, events)
        received = await read(consumer, len(events))
    assert [e.event_id for e in received] == [e.event_id for e in events]


async def test_malformed_records_are_skipped_and_committed_past_in_a_group(
    kafka_bootstrap: str, topic: str, url_for: Callable[..., str], make_sink: Callable[..., KafkaSink]
) -> None:
    _, events = make_execution_events(1)
    await produce_raw(kafka_bootstrap, topic, b"\xff\xfe not utf-8", b'{"event_type": "token", "schema_version": "9"}')
    await produce_raw(kafka_bootstrap, topic, None, key=b"tombstone")  # type: ignore[arg-type]
    sink = make_sink(url_for(topic))
    await asyncio.to_thread(write, sink, events)
    group = unique("g")
    async with KafkaStreamConsumer(url_for(topic), group=group, from_beginning=True) as consumer:
        received = await read(consumer, len(events))
        for event in received:
            await consumer.ack(event)
        assert consumer.stats.malformed == 3
        assert consumer.stats.acked == 3 + len(events)
    assert await committed(kafka_bootstrap, topic, group) == {0: 3 + len(events)}
    async with KafkaStreamConsumer(url_for(topic), group=group) as consumer:
        assert await consumer.consume_one(timeout=0.3) is None
        assert consumer.stats.malformed == 0


async def test_start_fails_clearly_when_no_broker_answers() -> None:
    consumer = KafkaStreamConsumer(f"kafka://u:hunter2@127.0.0.1:{free_port()}?topic=t&request_timeout_ms=1000")
    with pytest.raises(ConsumerError, match=r"cannot connect to kafka://u:\*\*\*@127\.0\.0\.1") as caught:
        await consumer.start()
    assert "hunter2" not in str(caught.value)
    assert not consumer.is_started
    with pytest.raises(ConsumerError, match="not started"):
        await consumer.consume_one(timeout=0.1)


def test_tail_errors_are_one_line_like_every_transport() -> None:
    refused = free_port()
    assert_one_line_error(
        run_cli("tail", f"kafka://127.0.0.1:{refused}?topic=events"),
        f"streamll tail: connection refused by kafka://127.0.0.1:{refused}?topic=events",
        "is the server running",
    )
    result = CliRunner().invoke(main, ["tail", "kafka://127.0.0.1:9092/events"])
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
    assert result.stderr.startswith("streamll tail: kafka URL") and "?topic=NAME" in result.stderr


def test_exit_with_a_broker_that_refuses_connections_is_quick_and_says_so() -> None:
    port = free_port()
    seconds, done = exit_with_sinks(f"kafka://127.0.0.1:{port}?topic=gone")
    assert done.returncode == 0, done.stderr
    assert seconds < 5, f"the exit drain took {seconds:.1f}s with STREAMLL_EXIT_TIMEOUT=15"
    assert f"connection refused to kafka://127.0.0.1:{port}?topic=gone" in done.stderr, done.stderr
    assert "stopped with 5 undelivered event(s)" in done.stderr
