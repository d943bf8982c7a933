"""The shared transport contract, run against Redis Streams."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from streamll.testing.contract import TransportContract, TransportFixture
from streamll_redis import RedisSink, RedisStreamConsumer

pytestmark = pytest.mark.redis


class RedisTransport(TransportFixture):
    """One fresh stream key on the test server."""

    def __init__(self, url: str, stream: str) -> None:
        self.url = url
        self.stream = stream
        self.destination_url = f"{url}{'&' if '?' in url else '?'}stream={stream}"
        self.sinks: list[RedisSink] = []

    def make_sink(self, **options: Any) -> RedisSink:
        sink = RedisSink(self.url, stream=self.stream, **options)
        self.sinks.append(sink)
        return sink

    def make_consumer(
        self, *, from_beginning: bool = True, group: str | None = None, **options: Any
    ) -> RedisStreamConsumer:
        return RedisStreamConsumer(self.url, stream=self.stream, group=group, from_beginning=from_beginning, **options)

    async def publish_raw(self, body: bytes) -> None:
        client = aioredis.Redis.from_url(self.url)
        try:
            await client.xadd(self.stream, {"data": body})
        finally:
            await client.aclose()


class TestRedisContract(TransportContract):
    @pytest.fixture
    def transport(self, redis_url: str, stream_key: str, redis_client: aioredis.Redis) -> Iterator[RedisTransport]:
        transport = RedisTransport(redis_url, stream_key)
        yield transport
        for sink in transport.sinks:
            sink.stop(timeout=2)
