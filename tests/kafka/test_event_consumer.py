"""The handler-style EventConsumer on a Kafka-protocol broker (see tests/compat/event_consumer_contract.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from tests.compat.event_consumer_contract import EventConsumerContract
from tests.kafka.test_contract import KafkaTransport

pytestmark = pytest.mark.kafka


class TestKafkaEventConsumer(EventConsumerContract):
    @pytest.fixture
    async def transport(
        self, kafka_bootstrap: str, topic: str, url_for: Callable[..., str]
    ) -> AsyncIterator[KafkaTransport]:
        transport = KafkaTransport(kafka_bootstrap, url_for(topic), topic)
        yield transport
        for sink in transport.sinks:
            sink.stop(timeout=2)

    @pytest.fixture
    def url_and_target(self, url_for: Callable[..., str], topic: str) -> tuple[str, str]:
        return url_for("not-this-one"), topic  # target wins over the URL's topic
