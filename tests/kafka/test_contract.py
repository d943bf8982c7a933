"""The shared transport contract, run against a Kafka-protocol broker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from streamll.testing.contract import TransportContract, TransportFixture
from streamll_kafka import KafkaSink, KafkaStreamConsumer

from tests.kafka.conftest import produce_raw

pytestmark = pytest.mark.kafka


class KafkaTransport(TransportFixture):
    """One fresh one-partition topic on the session's broker."""

    def __init__(self, bootstrap: str, url: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.url = url
        self.topic = topic
        self.destination_url = url
        self.sinks: list[KafkaSink] = []

    def make_sink(self, **options: Any) -> KafkaSink:
        sink = KafkaSink(self.url, **options)
        self.sinks.append(sink)
        return sink

    def make_consumer(
        self, *, from_beginning: bool = True, group: str | None = None, **options: Any
    ) -> KafkaStreamConsumer:
        # Kafka group ids are broker-wide: scope the contract's fixed names to this test's topic
        scoped = None if group is None else f"{group}-{self.topic}"
        return KafkaStreamConsumer(self.url, group=scoped, from_beginning=from_beginning, **options)

    async def publish_raw(self, body: bytes) -> None:
        await produce_raw(self.bootstrap, self.topic, body)


class TestKafkaContract(TransportContract):
    @pytest.fixture
    async def transport(
        self, kafka_bootstrap: str, topic: str, url_for: Callable[..., str]
    ) -> AsyncIterator[KafkaTransport]:
        transport = KafkaTransport(kafka_bootstrap, url_for(topic), topic)
        yield transport
        for sink in transport.sinks:
            sink.stop(timeout=2)
