"""What users see when Kafka says no: a topic the broker will not serve, a broker that stops under a running sink."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    NodeNotReadyError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
)
from streamll.core.emitter import make_event
from streamll.core.serialization import decode_event
from streamll.errors import ConsumerError
from streamll.sinks.results import BatchResult
from streamll.testing.contract import make_execution_events, read, write
from streamll_kafka import KafkaSink, KafkaStreamConsumer
from streamll_kafka.consumer import RETRY
from streamll_kafka.sink import KafkaDeliveryError
from streamll_kafka.url import KafkaOptions

from tests.helpers import async_wait_until
from tests.kafka.conftest import PrivateKafka, create_topic, kafka_url, read_records, unique

pytestmark = pytest.mark.kafka

REFUSED_TOPIC = "no such topic!"
"""Not a legal Kafka topic name: the broker never creates it, whatever its auto-creation setting."""


def unserved(options: KafkaOptions) -> KafkaOptions:
    """``options`` naming a topic the broker will not serve, set past the configuration's name check.

    Configuration refuses such a name; the broker answers for it as one without auto-creation answers for a
    missing topic, which is the path these tests follow (the suite's broker creates every legal topic).
    """
    return options.model_copy(update={"topic": REFUSED_TOPIC})


async def test_a_topic_the_broker_will_not_serve_is_named_in_the_sinks_error(
    url_for: Callable[..., str], make_sink: Callable[..., KafkaSink]
) -> None:
    sink = make_sink(url_for("unused", request_timeout_ms=300))
    sink.options = unserved(sink.options)
    _, events = make_execution_events(1)
    for event in events:
        sink.enqueue(event)
    await async_wait_until(lambda: sink.stats.write_errors >= 1, 20, what="the failed open")
    error = sink.stats.last_error or ""
    assert error.startswith("open: KafkaTimeoutError: "), error
    assert error.endswith(
        f"topic {REFUSED_TOPIC!r} is not available on {sink.options.display_url} "
        "after 300 ms (does it exist? does the broker auto-create topics?)"
    )
    assert sink.stats.delivered == 0
    assert sink.stats.received == len(events)


async def test_opening_on_a_topic_the_broker_will_not_serve_fails_clearly_and_leaves_nothing_running(
    url_for: Callable[..., str],
) -> None:
    sink = KafkaSink(url_for("unused", request_timeout_ms=300))
    sink.options = unserved(sink.options)
    running = asyncio.all_tasks()
    with pytest.raises(KafkaTimeoutError) as caught:
        await sink.open()
    assert str(caught.value).endswith(
        f"topic {REFUSED_TOPIC!r} is not available on {sink.options.display_url} after 300 ms "
        "(does it exist? does the broker auto-create topics?)"
    )
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - running == set(), "the failed open left the producer's tasks running"
    with pytest.raises(RuntimeError, match="before open"):
        await sink.send_batch([])


async def test_a_topic_the_broker_will_not_serve_fails_the_consumers_start(url_for: Callable[..., str]) -> None:
    consumer = KafkaStreamConsumer(url_for("unused", start_timeout=0.5))
    consumer.options = unserved(consumer.options)
    consumer.topic = consumer.options.topic
    with pytest.raises(ConsumerError) as caught:
        await consumer.start()
    assert str(caught.value) == (
        f"no partitions for topic {REFUSED_TOPIC!r} on {consumer.options.display_url} within 0.5s "
        "(does the topic exist? does the broker auto-create topics?)"
    )
    assert not consumer.is_started


async def test_a_batch_the_broker_finds_too_large_is_counted_as_failed_not_retried_forever(
    kafka_bootstrap: str, topic: str, url_for: Callable[..., str], make_sink: Callable[..., KafkaSink]
) -> None:
    """Each record passes the producer's own size check, but ``max_batch_size`` above the broker's limit packs
    them into one request the broker refuses: those events are counted as failed, later ones still arrive."""
    execution, small = make_execution_events(1)
    large = [make_event("log", {"blob": str(n) * 400_000}, execution=execution)[0] for n in range(3)]
    sink = make_sink(url_for(topic, max_batch_size=4_000_000, linger_ms=200))
    await asyncio.to_thread(write, sink, large)
    stats = sink.stats
    assert (stats.delivered, stats.failed, stats.dropped) == (0, len(large), 0)
    assert stats.last_error == "a record rejected: MessageSizeTooLargeError: [Error 10] MessageSizeTooLargeError"

    await asyncio.to_thread(write, sink, small)
    assert sink.stats.delivered == len(small)
    records = await read_records(kafka_bootstrap, topic, len(small))
    assert [decode_event(record.value).event_id for record in records] == [event.event_id for event in small]


async def test_records_a_broker_never_acknowledges_fail_the_batch_with_their_count(private_kafka: PrivateKafka) -> None:
    """The broker comes back without the topic: the producer gives up on the records it holds after
    ``request_timeout_ms`` and the batch fails as a whole (the worker then retries it on a new producer)."""
    bootstrap = private_kafka.bootstrap
    topic = await create_topic(bootstrap, unique("lost"))
    sink = KafkaSink(kafka_url(bootstrap, topic, request_timeout_ms=500))
    running = asyncio.all_tasks()
    await sink.open()
    try:
        _, events = make_execution_events(1)
        assert await sink.write_batch([sink.encode(event) for event in events]) == BatchResult.of(len(events), [])
        await asyncio.to_thread(private_kafka.stop)
        private_kafka.wipe_data()
        await asyncio.to_thread(private_kafka.start)
        (lost,) = make_execution_events(0)[1][:1]
        with pytest.raises(KafkaDeliveryError) as caught:
            await sink.write_batch([sink.encode(lost)])
        cause = caught.value.__cause__
        assert cause is not None
        assert str(caught.value) == (
            f"1 of 1 records not acknowledged by {sink.options.display_url}: {type(cause).__name__}: {cause}"
        )
    finally:
        await sink.aclose()
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - running == set(), "aclose left the producer's tasks running"


async def test_fetch_errors_aiokafka_lets_through_are_retried_with_backoff_or_raised(
    topic: str,
    url_for: Callable[..., str],
    make_sink: Callable[..., KafkaSink],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Injected errors: aiokafka 0.14 rides out a stopped noida-db inside ``getmany`` (checked: nothing surfaces
    in 25 s of outage), but a client or broker that lets a retriable error through must not end the reader."""
    _, events = make_execution_events(1)
    await asyncio.to_thread(write, make_sink(url_for(topic)), events)
    async with KafkaStreamConsumer(url_for(topic), from_beginning=True) as consumer:
        client = consumer._consumer
        assert client is not None
        real = client.getmany
        script: list[Exception | None] = [KafkaConnectionError("broker gone"), NodeNotReadyError(1), None]
        script += [RequestTimedOutError("slow"), TopicAuthorizationFailedError(topic)]
        calls: list[float] = []

        async def getmany(*args: Any, **kwargs: Any) -> Any:
            calls.append(time.monotonic())
            error = script.pop(0) if script else None
            if error is not None:
                raise error
            return await real(*args, **kwargs)

        monkeypatch.setattr(client, "getmany", getmany)
        with caplog.at_level(logging.WARNING, logger="streamll.kafka"):
            received = await read(consumer, len(events))
            assert [event.event_id for event in received] == [event.event_id for event in events]
            shortest = RETRY.first * (1 - RETRY.jitter)
            assert calls[1] - calls[0] >= shortest - 0.01, "no backoff after the first error"
            assert calls[2] - calls[1] >= 2 * shortest - 0.01, "the backoff did not grow"
            assert consumer.stats.last_error == "NodeNotReadyError: NodeNotReadyError: 1"

            assert await consumer.consume_one(timeout=0.05) is None  # a success in between: backoff starts over
            assert consumer.stats.last_error == "RequestTimedOutError: [Error 7] RequestTimedOutError: slow"
            with pytest.raises(TopicAuthorizationFailedError):  # not retriable: the reader sees it
                await consumer.consume_one(timeout=1)
    warnings = [record.getMessage() for record in caplog.records if record.name == "streamll.kafka"]
    assert warnings == [
        "streamll kafka consumer: KafkaConnectionError: KafkaConnectionError: broker gone (retrying)",
        "streamll kafka consumer: NodeNotReadyError: NodeNotReadyError: 1 (retrying)",
        "streamll kafka consumer: RequestTimedOutError: [Error 7] RequestTimedOutError: slow (retrying)",
    ]
