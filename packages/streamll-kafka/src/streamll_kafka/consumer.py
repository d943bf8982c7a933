"""KafkaStreamConsumer: read streamll events back from a Kafka topic.

Without a group the consumer reads every partition, from the beginning or
from the end (``from_beginning``); "the end" is resolved before
:meth:`~streamll.consumer.BaseConsumer.start` returns, so every event produced
after that is seen. With a group the partitions are shared among the group's
members and :meth:`~streamll.consumer.BaseConsumer.ack` commits the event's
offset + 1 for its partition (manual commits only), so a restarted member
resumes after the last acknowledged event. Acknowledging an event commits
everything before it in that partition, as Kafka offsets do.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from streamll.backoff import Backoff
from streamll.consumer import BaseConsumer, Received
from streamll.errors import ConsumerError

from streamll_kafka.client import consumer_kwargs, stop_quietly
from streamll_kafka.url import DEFAULT_URL, KafkaOptions, parse_kafka_url

logger = logging.getLogger("streamll.kafka")

MAX_RECORDS = 500
"""Records fetched per poll and held in memory at most."""

RETRY = Backoff(0.1, 0.5)
"""Waits after a retriable fetch error (the client reconnects by itself meanwhile)."""


@dataclass(frozen=True)
class KafkaHandle:
    """Where a record sits: what :meth:`KafkaStreamConsumer.ack` commits past."""

    partition: int
    offset: int


class _Assignments(ConsumerRebalanceListener):  # type: ignore[misc]
    """Tells the consumer when the group gave it partitions, and drops records of partitions it lost."""

    def __init__(self, consumer: KafkaStreamConsumer) -> None:
        self._consumer = consumer
        self.assigned = asyncio.Event()

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._consumer._forget({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self.assigned.set()


class KafkaStreamConsumer(BaseConsumer[KafkaHandle]):
    """Reads one topic; ``async for event in consumer`` or :meth:`consume_one`.

    ``url`` takes the same form as the sink's; ``topic``, ``group`` and
    ``from_beginning`` given here win over the URL's. Malformed records are
    reported, counted in ``stats.malformed`` and skipped (committed past in a
    group). A broker outage is ridden out: the client reconnects by itself and
    reading resumes where it stopped.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        topic: str | None = None,
        group: str | None = None,
        from_beginning: bool | None = None,
        event_types: Iterable[str] | str | None = None,
        execution_id: str | None = None,
    ) -> None:
        """Read the topic of ``url`` (or ``topic``); keywords override the URL's options; connects on ``start()``."""
        super().__init__(event_types=event_types, execution_id=execution_id)
        options = parse_kafka_url(url)
        if topic is not None:
            options = options.replace(topic=topic)
        self.options: KafkaOptions = options
        self.topic = options.topic
        self.group = group if group is not None else options.group
        if from_beginning is None:
            from_beginning = bool(options.from_beginning)
        self.from_beginning = from_beginning
        self._consumer: AIOKafkaConsumer | None = None
        self._listener: _Assignments | None = None
        self._records: deque[ConsumerRecord[Any, Any]] = deque()
        self._failed_polls = 0
        """Retriable fetch errors in a row (the retry number for :data:`RETRY`)."""
        self._committed: dict[int, int] = {}

    @classmethod
    def from_url(cls, url: str, **options: Any) -> KafkaStreamConsumer:
        """The consumer a ``kafka://`` URL describes (the plugin's factory); keyword options as in the constructor."""
        return cls(url, **options)

    # ------------------------------------------------------------------ transport API

    async def _connect(self) -> None:
        kwargs = consumer_kwargs(self.options, group=self.group, from_beginning=self.from_beginning)
        consumer = AIOKafkaConsumer(**kwargs)
        try:
            await consumer.start()
        except KafkaError as exc:
            await stop_quietly(consumer)
            raise ConsumerError(f"cannot connect to {self.options.display_url}: {type(exc).__name__}: {exc}") from exc
        # aiokafka's coordinator task must get to run once: cancelled before its
        # first step, it makes stop() raise CancelledError.
        await asyncio.sleep(0)
        self._records.clear()
        self._committed.clear()
        try:
            if self.group is not None:
                self._listener = _Assignments(self)
                consumer.subscribe([self.topic], listener=self._listener)
            else:
                consumer.subscribe([self.topic])
            await asyncio.wait_for(self._position(consumer), timeout=self.options.start_timeout)
        except TimeoutError:
            await stop_quietly(consumer)
            waited = "partition assignment from group " + repr(self.group) if self.group else "partitions"
            raise ConsumerError(
                f"no {waited} for topic {self.topic!r} on {self.options.display_url} within "
                f"{self.options.start_timeout:g}s (does the topic exist? does the broker auto-create topics?)"
            ) from None
        except BaseException:
            await stop_quietly(consumer)
            raise
        self._consumer = consumer

    async def _position(self, consumer: AIOKafkaConsumer) -> None:
        """Wait for partitions, then for each one's starting offset, so no later record is missed."""
        if self._listener is not None:
            await self._listener.assigned.wait()
        else:
            while not consumer.assignment():
                await asyncio.sleep(0.02)
        for tp in consumer.assignment():
            await consumer.position(tp)

    async def _disconnect(self) -> None:
        consumer, self._consumer = self._consumer, None
        self._records.clear()
        self._listener = None
        if consumer is not None:
            await consumer.stop()

    async def _receive(self, timeout: float | None) -> Received[KafkaHandle] | None:
        if not self._records:
            await self._poll(1.0 if timeout is None else timeout)
        if not self._records:
            return None
        record = self._records.popleft()
        body = record.value if isinstance(record.value, bytes) else b""
        return Received(body=body, handle=KafkaHandle(record.partition, record.offset))

    async def _poll(self, timeout: float) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        try:
            batches = await consumer.getmany(timeout_ms=int(timeout * 1000), max_records=MAX_RECORDS)
        except KafkaError as exc:
            if not getattr(exc, "retriable", False):
                raise
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            logger.warning("streamll kafka consumer: %s: %s (retrying)", type(exc).__name__, exc)
            self._failed_polls += 1
            await asyncio.sleep(min(timeout, RETRY.delay(self._failed_polls)))
            return
        self._failed_polls = 0
        for records in batches.values():
            self._records.extend(records)

    async def _ack_message(self, handle: KafkaHandle) -> None:
        consumer = self._consumer
        if self.group is None:
            return
        if consumer is None:
            raise ConsumerError("the consumer is stopped: acknowledge events before stop(), the group re-delivers them")
        next_offset = handle.offset + 1
        if self._committed.get(handle.partition, -1) >= next_offset:
            return
        tp = TopicPartition(self.topic, handle.partition)
        try:
            await consumer.commit({tp: next_offset})
        except (CommitFailedError, IllegalStateError) as exc:
            # The partition moved to another member; it will deliver the record again.
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            logger.warning(
                "streamll kafka consumer: commit of %s offset %d failed after a rebalance (%s); "
                "the group will deliver it again",
                tp,
                handle.offset,
                exc,
            )
            return
        self._committed[handle.partition] = next_offset

    # ------------------------------------------------------------------ helpers

    def _forget(self, partitions: set[int]) -> None:
        """Drop buffered records of partitions this member no longer owns."""
        if partitions:
            self._records = deque(record for record in self._records if record.partition not in partitions)
            for partition in partitions:
                self._committed.pop(partition, None)

    def __repr__(self) -> str:
        """The brokers and topic (no secrets), the group, and whether it is started."""
        group = f" group={self.group!r}" if self.group else ""
        return f"<KafkaStreamConsumer {self.options.display_url}{group} started={self.is_started}>"


__all__ = ["KafkaHandle", "KafkaStreamConsumer"]
