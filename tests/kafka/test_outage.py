"""A broker restart in the middle of a run: the sink buffers and delivers everything, the consumer carries on."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from streamll.core.events import Event
from streamll.core.serialization import decode_event
from streamll.testing.contract import make_execution_events, write
from streamll_kafka import KafkaSink, KafkaStreamConsumer

from tests.helpers import async_wait_until
from tests.kafka.conftest import PrivateKafka, create_topic, kafka_url, read_records, unique

pytestmark = pytest.mark.kafka


async def collect(consumer: KafkaStreamConsumer, into: dict[str, Event], stop: asyncio.Event) -> None:
    """Read (and ack) until ``stop`` is set, keeping every event by id."""
    while not stop.is_set():
        event = await consumer.consume_one(timeout=0.2)
        if event is not None:
            into.setdefault(event.event_id, event)
            await consumer.ack(event)


async def test_broker_restart_mid_run_loses_nothing(
    private_kafka: PrivateKafka, make_sink: Callable[..., KafkaSink]
) -> None:
    bootstrap = private_kafka.bootstrap
    topic = await create_topic(bootstrap, unique("outage"))
    url = kafka_url(bootstrap, topic, request_timeout_ms=5000)
    sink = make_sink(url)
    before = [make_execution_events(40)[1] for _ in range(3)]
    during = [make_execution_events(40)[1] for _ in range(3)]
    after = [make_execution_events(40)[1] for _ in range(3)]
    everything = [event for group in (before, during, after) for events in group for event in events]

    plain: dict[str, Event] = {}
    grouped: dict[str, Event] = {}
    stop = asyncio.Event()
    async with (
        KafkaStreamConsumer(url, from_beginning=True) as reader,
        KafkaStreamConsumer(url, group=unique("g"), from_beginning=True) as member,
    ):
        readers = [
            asyncio.create_task(collect(reader, plain, stop)),
            asyncio.create_task(collect(member, grouped, stop)),
        ]
        try:
            await asyncio.to_thread(write, sink, [e for events in before for e in events])
            delivered_before = sum(len(events) for events in before)
            await async_wait_until(
                lambda: len(plain) == len(grouped) == delivered_before, 20, what="events before the outage"
            )

            await asyncio.to_thread(private_kafka.stop)
            started = time.monotonic()
            for events in during:
                for event in events:
                    sink.enqueue(event)
            assert time.monotonic() - started < 0.5, "enqueue waited on the broker"
            assert await asyncio.to_thread(sink.flush, 0.5) is False, "nothing can be delivered while it is down"
            undelivered = sum(len(events) for events in during)
            assert sink.stats.received == delivered_before + undelivered
            assert sink.stats.delivered == delivered_before, "an event was acknowledged by a stopped broker"
            assert len(plain) == len(grouped) == delivered_before

            await asyncio.to_thread(private_kafka.start)
            await asyncio.to_thread(write, sink, [e for events in after for e in events], 60.0)
            await async_wait_until(lambda: len(plain) == len(grouped) == len(everything), 60, what="every event")
        finally:
            stop.set()
            await asyncio.gather(*readers)

    stats = sink.stats
    assert stats.dropped == 0 and stats.failed == 0
    assert stats.delivered == stats.received == len(everything)
    assert set(plain) == set(grouped) == {event.event_id for event in everything}
    for events in (*before, *during, *after):
        ids = [event.event_id for event in events]
        order = [event_id for event_id in plain if event_id in set(ids)]
        assert order == ids, "an execution's events arrived out of order"


async def test_a_broker_that_comes_back_empty_gets_everything_buffered_since(
    private_kafka: PrivateKafka, make_sink: Callable[..., KafkaSink], caplog: pytest.LogCaptureFixture
) -> None:
    """Like a memory-only broker restarting: the topic is auto-created again and the buffered events land in it.

    The producer first retries against the vanished partition until ``request_timeout_ms``; the sink then
    rebuilds it, and the new producer's metadata request re-creates the topic.
    """
    bootstrap = private_kafka.bootstrap
    topic = await create_topic(bootstrap, unique("amnesia"))
    sink = make_sink(kafka_url(bootstrap, topic, request_timeout_ms=2000))
    _, before = make_execution_events(10)
    await asyncio.to_thread(write, sink, before)

    await asyncio.to_thread(private_kafka.stop)
    private_kafka.wipe_data()
    _, during = make_execution_events(30)
    for event in during:
        sink.enqueue(event)
    await asyncio.to_thread(private_kafka.start)
    await asyncio.to_thread(write, sink, [], 60.0)

    records = await read_records(bootstrap, topic, len(during))
    ids = [decode_event(record.value).event_id for record in records]
    assert ids == [event.event_id for event in during]  # the wiped events are gone, the buffered ones all arrived
    assert sink.stats.dropped == 0 and sink.stats.failed == 0
    assert sink.stats.delivered == len(before) + len(during)
    # the batch the vanished partition never acknowledged was reported, then retried whole
    reports = [record.getMessage() for record in caplog.records if "KafkaDeliveryError" in record.getMessage()]
    unacknowledged = (
        rf"KafkaDeliveryError: (\d+) of \1 records not acknowledged by {re.escape(sink.options.display_url)}: "
    )
    assert reports and re.search(rf"write failed \({unacknowledged}\w+Error: ", reports[0]), reports


async def test_a_killed_broker_loses_records_it_had_acknowledged(
    private_kafka: PrivateKafka, make_sink: Callable[..., KafkaSink]
) -> None:
    """Zero drops on restart holds for a graceful stop only: noida-db killed with SIGKILL forgets acked records.

    The sink did its part (every record acknowledged with ``acks=all``, ``stats.delivered`` counts them);
    the broker had not written them to disk. A broker that fsyncs before it acknowledges keeps them.
    """
    bootstrap = private_kafka.bootstrap
    topic = await create_topic(bootstrap, unique("killed"))
    url = kafka_url(bootstrap, topic, request_timeout_ms=5000)
    sink = make_sink(url)
    _, events = make_execution_events(200)
    await asyncio.to_thread(write, sink, events)
    assert sink.stats.delivered == len(events) and sink.stats.dropped == 0

    assert private_kafka.process is not None
    private_kafka.process.kill()  # SIGKILL: no chance to save
    private_kafka.process.wait(10)
    private_kafka.process = None
    await asyncio.to_thread(private_kafka.start)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        topics = await consumer.topics()  # fetches the metadata partitions_for_topic reads
        partitions = (consumer.partitions_for_topic(topic) or set()) if topic in topics else set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions]) if partitions else {}
    finally:
        await consumer.stop()
    kept = sum(ends.values())
    print(f"noida-db kept {kept} of {len(events)} acknowledged records across SIGKILL")
    assert kept < len(events), f"noida-db kept all {kept} acknowledged records across SIGKILL"


async def test_a_sink_stopped_during_an_outage_spills_what_was_in_flight_and_the_next_one_delivers_it(
    private_kafka: PrivateKafka, make_sink: Callable[..., KafkaSink], tmp_path: Path
) -> None:
    bootstrap = private_kafka.bootstrap
    topic = await create_topic(bootstrap, unique("spilled"))
    url = kafka_url(bootstrap, topic, overflow="spill", spill_path=str(tmp_path / "spill.jsonl"))
    sink = make_sink(url)
    _, before = make_execution_events(1)
    await asyncio.to_thread(write, sink, before)

    await asyncio.to_thread(private_kafka.stop)
    _, during = make_execution_events(3)
    for event in during:
        sink.enqueue(event)
    await async_wait_until(lambda: sink.stats.queued_bytes == 0, 10, what="every event handed to the producer")
    assert await asyncio.to_thread(sink.stop, 0.5) is False, "nothing can be delivered while the broker is down"
    assert sink.stats.spilled == len(during)

    await asyncio.to_thread(private_kafka.start)
    await asyncio.to_thread(write, make_sink(url), [])  # the next sink on that spill file sends it first
    records = await read_records(bootstrap, topic, len(before) + len(during))
    delivered = [decode_event(record.value).event_id for record in records]
    assert delivered == [event.event_id for event in before + during]
