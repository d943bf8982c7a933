"""The handler-style EventConsumer on NATS JetStream (see tests/compat/event_consumer_contract.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest

from tests.compat.event_consumer_contract import EventConsumerContract
from tests.nats.conftest import delete_stream
from tests.nats.test_contract import NatsTransport

pytestmark = pytest.mark.nats


class TestNatsEventConsumer(EventConsumerContract):
    group_options: ClassVar[dict[str, Any]] = {"ack_wait": 1.0}

    @pytest.fixture
    async def transport(self, nats_url: str, names: tuple[str, str]) -> AsyncIterator[NatsTransport]:
        subject, stream = names
        transport = NatsTransport(nats_url, subject, stream)
        yield transport
        for sink in transport.sinks:
            await asyncio.to_thread(sink.stop, 5)
        await delete_stream(nats_url, stream)

    @pytest.fixture
    def url_and_target(self, nats_url: str, names: tuple[str, str]) -> tuple[str, str]:
        subject, stream = names
        return f"{nats_url}?stream={stream}&subject=not.this.one", subject  # target wins over the URL's subject
