"""The shared transport contract, run against NATS JetStream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from streamll.testing.contract import TransportContract, TransportFixture
from streamll_nats import NatsSink, NatsStreamConsumer
from streamll_nats.jetstream import ensure_stream
from streamll_nats.url import parse_url

from tests.nats.conftest import delete_stream

pytestmark = pytest.mark.nats


class NatsTransport(TransportFixture):
    """One fresh subject in its own stream; ``group`` maps to a durable consumer."""

    def __init__(self, url: str, subject: str, stream: str) -> None:
        self.url = f"{url}?subject={subject}&stream={stream}"
        self.destination_url = self.url
        self.sinks: list[NatsSink] = []

    def make_sink(self, **options: Any) -> NatsSink:
        sink = NatsSink(self.url, **options)
        self.sinks.append(sink)
        return sink

    def make_consumer(
        self, *, from_beginning: bool = True, group: str | None = None, **options: Any
    ) -> NatsStreamConsumer:
        return NatsStreamConsumer(self.url, durable=group, from_beginning=from_beginning, **options)

    async def publish_raw(self, body: bytes) -> None:
        options = parse_url(self.url)
        nc = await nats.connect(list(options.servers))
        try:
            js = nc.jetstream()
            await ensure_stream(js, options)
            await js.publish(options.subject, body, stream=options.stream)
        finally:
            await nc.close()


class TestNatsContract(TransportContract):
    @pytest.fixture
    async def transport(self, nats_url: str, names: tuple[str, str]) -> AsyncIterator[NatsTransport]:
        subject, stream = names
        transport = NatsTransport(nats_url, subject, stream)
        yield transport
        for sink in transport.sinks:
            await asyncio.to_thread(sink.stop, 5)
        await delete_stream(nats_url, stream)
