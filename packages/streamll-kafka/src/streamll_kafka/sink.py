"""KafkaSink: events to a Kafka topic, batched and pipelined on streamll's background worker."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Unpack

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
    UnknownTopicOrPartitionError,
)
from aiokafka.partitioner import DefaultPartitioner
from streamll.core.events import Event
from streamll.core.serialization import encode_event
from streamll.sinks.base import BaseSink
from streamll.sinks.results import BatchResult
from streamll.url_options import SinkOptions, sink_arguments

from streamll_kafka.client import producer_kwargs, stop_quietly
from streamll_kafka.records import Headers, record_headers, record_key
from streamll_kafka.url import DEFAULT_URL, KafkaOptions, parse_kafka_url

_PERMANENT = (MessageSizeTooLargeError, RecordTooLargeError)
"""Errors about one record that no retry can fix: that event is counted as failed, the rest go on."""
_NO_METADATA = (KafkaTimeoutError, UnknownTopicOrPartitionError)
"""What ``partitions_for`` raises once ``request_timeout_ms`` passed without the topic's metadata (aiokafka
0.14 raises the second)."""


class KafkaDeliveryError(Exception):
    """Part of a batch was not acknowledged by the broker; the batch is retried."""


class KafkaSink(BaseSink):
    """Produces every event as one record on one Kafka topic (see ``streamll_kafka.records`` for the layout).

    ``emit`` only buffers; the shared background worker hands each batch to
    ``AIOKafkaProducer.send`` record by record (the producer groups them into
    per-partition requests) and awaits every acknowledgement, so the program
    never waits on Kafka. The record key is ``execution_id``: the events of
    one execution share a partition and keep their order.

    When a record is not acknowledged the whole batch is kept and retried with
    backoff after the producer is rebuilt; the buffer's overflow policy bounds
    memory meanwhile. Delivery is at least once: a batch cut off mid-way is
    sent again whole, so a consumer may see an ``event_id`` twice.

    Options come from the URL (``kafka://host:9092?topic=NAME&acks=all``, see
    ``streamll_kafka.url``); keyword arguments given here win over it.
    ``sink_options`` are ``BaseSink``'s (``buffer_size``, ``overflow``, ...).
    """

    encodes_records = True

    batch_size = 500
    pipeline_depth = 4

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        topic: str | None = None,
        **sink_options: Unpack[SinkOptions],
    ) -> None:
        """Options from ``url``, ``topic=`` overriding its topic; nothing connects until the first batch."""
        options = parse_kafka_url(url)
        if topic is not None:
            options = options.replace(topic=topic)
        default_name = f"kafka:{options.topic}@{','.join(options.bootstrap_servers)}"
        super().__init__(**sink_arguments(options.sink_options, sink_options, default_name=default_name))
        self.options: KafkaOptions = options
        self._producer: AIOKafkaProducer | None = None
        self._partitioner = DefaultPartitioner()

    @classmethod
    def from_url(cls, url: str) -> KafkaSink:
        """The sink a ``kafka://`` or ``kafka+ssl://`` URL describes (the plugin's factory)."""
        return cls(url)

    @property
    def topic(self) -> str:
        """The topic events are produced to."""
        return self.options.topic

    # ------------------------------------------------------------------ BaseSink API

    async def open(self) -> None:
        """Start a producer and wait for the topic's metadata (fails clearly when the topic is unavailable)."""
        producer = AIOKafkaProducer(**producer_kwargs(self.options))
        try:
            await producer.start()
            try:
                await producer.partitions_for(self.options.topic)
            except _NO_METADATA:
                raise KafkaTimeoutError(
                    f"topic {self.options.topic!r} is not available on {self.options.display_url} "
                    f"after {self.options.request_timeout_ms} ms (does it exist? does the broker auto-create topics?)"
                ) from None
        except BaseException:
            await stop_quietly(producer)
            raise
        self._producer = producer

    async def aclose(self) -> None:
        """Flush what the producer holds and close its connections."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    def encode(self, event: Event) -> tuple[bytes | None, bytes, Headers, str]:
        """Key, value, headers and id of one record (raises for text UTF-8 cannot hold)."""
        return record_key(event), encode_event(event), record_headers(event), event.event_id

    def record_body(self, record: Any) -> bytes:
        """The record's value: the v1 JSON body."""
        return record[1]  # type: ignore[no-any-return]

    async def send_batch(self, records: list[Any]) -> Awaitable[BatchResult]:
        """Hand every record to the producer in order; the awaitable resolves once all are acknowledged.

        Several batches are in flight at once (``pipeline_depth``); the
        producer keeps one partition's records in order. The completion
        raises when a record was not acknowledged, so the batch is retried.
        """
        producer = self._producer
        if producer is None:
            raise RuntimeError("KafkaSink.send_batch called before open()")
        topic = self.options.topic
        partition_of = self._partition_cache(producer, topic)
        futures: list[asyncio.Future[Any]] = []
        rejected: list[str] = []
        try:
            for key, value, headers, event_id in records:
                try:
                    futures.append(
                        await producer.send(topic, value, key=key, partition=partition_of(key), headers=headers)
                    )
                except _PERMANENT as exc:
                    rejected.append(_rejection(event_id, exc))
        except BaseException:
            await asyncio.gather(*futures, return_exceptions=True)
            raise
        return self._complete(futures, len(records), rejected)

    async def _complete(self, futures: list[asyncio.Future[Any]], total: int, rejected: list[str]) -> BatchResult:
        results = await asyncio.gather(*futures, return_exceptions=True)
        errors: list[BaseException] = []
        for result in results:
            if isinstance(result, _PERMANENT):
                rejected.append(_rejection(None, result))
            elif isinstance(result, BaseException):
                errors.append(result)
        if errors:
            first = errors[0]
            raise KafkaDeliveryError(
                f"{len(errors)} of {total} records not acknowledged by {self.options.display_url}: "
                f"{type(first).__name__}: {first}"
            ) from first
        return BatchResult.of(total - len(rejected), rejected)

    async def write_batch(self, events: list[Any]) -> BatchResult:
        """Produce encoded records and wait for every acknowledgement (``send_batch`` and its completion)."""
        return await (await self.send_batch(events))

    # ------------------------------------------------------------------ helpers

    def _partition_cache(self, producer: AIOKafkaProducer, topic: str) -> Callable[[bytes | None], int | None]:
        """The producer's own key -> partition choice, computed once per key for this batch.

        The default partitioner (murmur2 of the key, as Kafka's Java client) costs
        microseconds per record; an execution's events share one key, so a batch
        needs it only once per execution. ``None`` leaves the choice to the producer.
        """
        cluster = producer.client.cluster
        all_partitions = cluster.partitions_for_topic(topic)
        if not all_partitions:
            return lambda key: None
        ordered = sorted(all_partitions)
        available = sorted(cluster.available_partitions_for_topic(topic) or ())
        cache: dict[bytes, int] = {}

        def partition_of(key: bytes | None) -> int | None:
            if key is None:
                return None
            partition = cache.get(key)
            if partition is None:
                partition = cache[key] = self._partitioner(key, ordered, available)
            return partition

        return partition_of

    def __repr__(self) -> str:
        """Name, URL without credentials, and whether the sink is running."""
        return f"<KafkaSink {self.name!r} {self.options.display_url} running={self.is_running}>"


def _rejection(event_id: str | None, exc: BaseException) -> str:
    """Why the broker can never accept an event (too large): it is counted as failed, not retried."""
    what = f"event {event_id}" if event_id is not None else "a record"
    return f"{what} rejected: {type(exc).__name__}: {exc}"


__all__ = ["KafkaDeliveryError", "KafkaSink"]
