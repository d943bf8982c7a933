"""KafkaSink on a real broker: record layout, partitioning by execution, compression, failures counted."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.partitioner import murmur2
from streamll.core.emitter import make_event
from streamll.core.serialization import decode_event, event_to_dict
from streamll.sinks.results import BatchResult
from streamll.testing.contract import make_execution_events, write
from streamll_kafka import KafkaSink

from tests.helpers import free_port, require_module
from tests.kafka.conftest import create_topic, read_records, unique

pytestmark = pytest.mark.kafka


async def test_key_is_execution_id_and_each_execution_stays_ordered_in_one_partition(
    kafka_bootstrap: str, url_for: Callable[..., str], make_sink: Callable[..., KafkaSink]
) -> None:
    topic = await create_topic(kafka_bootstrap, unique(), partitions=4)
    executions = [make_execution_events(20) for _ in range(12)]
    interleaved = [events[i] for i in range(22) for _, events in executions]
    sink = make_sink(url_for(topic), batch_size=50)
    await asyncio.to_thread(write, sink, interleaved)

    records = await read_records(kafka_bootstrap, topic, len(interleaved))
    by_execution: dict[str, list[Any]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        event = decode_event(record.value)
        assert record.key == event.execution_id.encode()
        assert record.partition == (murmur2(record.key) & 0x7FFFFFFF) % 4, "not the Java client's partition"
        by_execution[event.execution_id].append((record.partition, event))
    assert len({partition for items in by_execution.values() for partition, _ in items}) > 1, "one partition only"
    for execution, events in executions:
        items = by_execution[execution.execution_id]
        assert len({partition for partition, _ in items}) == 1, "an execution spread over partitions"
        assert [event.event_id for _, event in items] == [event.event_id for event in events]
        assert [event.sequence for _, event in items] == list(range(22))


async def test_cloudevents_headers_travel_next_to_the_json_body(
    kafka_bootstrap: str,
    topic: str,
    url_for: Callable[..., str],
    make_sink: Callable[..., KafkaSink],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMLL_SOURCE", "urn:example:kafka-producer")
    _, events = make_execution_events(2)
    sink = make_sink(url_for(topic))
    await asyncio.to_thread(write, sink, events)

    records = await read_records(kafka_bootstrap, topic, len(events))
    for record, event in zip(records, events, strict=True):
        headers = dict(record.headers)
        assert all(isinstance(value, bytes) for value in headers.values())
        assert event_to_dict(decode_event(record.value)) == event_to_dict(event)
        assert headers["content-type"] == b"application/json"
        assert headers["ce_id"] == event.event_id.encode()
        assert headers["ce_type"] == f"dev.streamll.{event.event_type}".encode()
        assert headers["ce_specversion"] == b"1.0"
        assert headers["ce_subject"] == event.execution_id.encode()
        assert headers["ce_source"] == b"urn:example:kafka-producer"  # STREAMLL_SOURCE, docs/wire-format.md
        assert headers["ce_time"] == event.timestamp.isoformat().replace("+00:00", "Z").encode()
        assert headers["ce_time"].endswith(b"Z")
        names = ("id", "type", "source", "time", "specversion", "subject", "streamllschemaversion")
        expected = {f"ce_{name}" for name in names} | {"content-type"}
        assert set(headers) == expected


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
async def test_compressed_batches_round_trip(
    kafka_bootstrap: str, topic: str, url_for: Callable[..., str], make_sink: Callable[..., KafkaSink], codec: str
) -> None:
    if codec != "gzip":
        require_module("cramjam", f"the {codec} codec")
    _, events = make_execution_events(30)
    sink = make_sink(url_for(topic, compression=codec, linger_ms=20))
    await asyncio.to_thread(write, sink, events)
    records = await read_records(kafka_bootstrap, topic, len(events))
    assert [decode_event(r.value).event_id for r in records] == [e.event_id for e in events]


async def test_acks_one_without_idempotence(
    kafka_bootstrap: str, topic: str, url_for: Callable[..., str], make_sink: Callable[..., KafkaSink]
) -> None:
    _, events = make_execution_events(5)
    sink = make_sink(url_for(topic, acks=1))
    assert sink.options.effective_idempotence is False
    await asyncio.to_thread(write, sink, events)
    assert len(await read_records(kafka_bootstrap, topic, len(events))) == len(events)


async def test_an_oversized_event_is_counted_as_failed_and_the_rest_are_delivered(
    kafka_bootstrap: str, topic: str, url_for: Callable[..., str], make_sink: Callable[..., KafkaSink]
) -> None:
    execution, events = make_execution_events(3)
    huge = make_event("log", {"blob": "x" * 2_000_000}, execution=execution)[0]
    sink = make_sink(url_for(topic))
    await asyncio.to_thread(write, sink, [*events[:2], huge, *events[2:]])
    stats = sink.stats
    assert (stats.delivered, stats.failed, stats.dropped) == (len(events), 1, 0)
    assert f"event {huge.event_id} rejected: MessageSizeTooLargeError: " in (stats.last_error or "")
    records = await read_records(kafka_bootstrap, topic, len(events))
    assert [decode_event(r.value).event_id for r in records] == [e.event_id for e in events]


def test_an_unreachable_broker_never_blocks_the_program_and_losses_are_counted() -> None:
    sink = KafkaSink(f"kafka://127.0.0.1:{free_port()}?topic=nowhere&request_timeout_ms=1000", buffer_size=10)
    _, events = make_execution_events(13)
    started = time.monotonic()
    for event in events:
        sink.enqueue(event)
    assert time.monotonic() - started < 0.5, "enqueue waited on the network"
    assert sink.flush(timeout=0.5) is False
    assert "KafkaConnectionError" in (sink.stats.last_error or "")
    assert sink.stop(timeout=0.5) is False, "stop reports the undelivered events"
    stats = sink.stats
    assert stats.received == len(events)
    assert stats.delivered == 0
    assert stats.dropped == len(events), "buffer overflow plus undelivered-at-stop are all counted"
    assert stats.write_errors >= 1


async def test_a_batch_hashes_each_execution_key_once(
    kafka_bootstrap: str, url_for: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented cost of partitioning (like counting queries): murmur2 once per execution in a batch, not per
    record, and never for an event without a key (the producer spreads those)."""
    topic = await create_topic(kafka_bootstrap, unique(), partitions=3)
    sink = KafkaSink(url_for(topic))
    hashed: list[bytes | None] = []
    partitioner = sink._partitioner

    def counting(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        hashed.append(key)
        return partitioner(key, all_partitions, available)  # type: ignore[no-any-return]

    monkeypatch.setattr(sink, "_partitioner", counting)
    executions = [make_execution_events(18)[1] for _ in range(5)]
    loose = make_event("custom", {"n": 1})[0].model_copy(update={"execution_id": ""})
    batch = [loose, *(events[i] for i in range(20) for events in executions)]
    await sink.open()
    try:
        assert await sink.write_batch([sink.encode(event) for event in batch]) == BatchResult.of(len(batch), [])
    finally:
        await sink.aclose()
    assert sorted(hashed) == sorted(events[0].execution_id.encode() for events in executions)
    for record in await read_records(kafka_bootstrap, topic, len(batch)):
        if record.key is not None:
            assert record.partition == (murmur2(record.key) & 0x7FFFFFFF) % 3
