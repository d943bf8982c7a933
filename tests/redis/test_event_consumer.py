"""The handler-style EventConsumer on Redis Streams (see tests/compat/event_consumer_contract.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis

from tests.compat.event_consumer_contract import EventConsumerContract
from tests.redis.conftest import with_query
from tests.redis.test_contract import RedisTransport

pytestmark = pytest.mark.redis


class TestRedisEventConsumer(EventConsumerContract):
    @pytest.fixture
    def transport(self, redis_url: str, stream_key: str, redis_client: aioredis.Redis) -> Iterator[RedisTransport]:
        transport = RedisTransport(redis_url, stream_key)
        yield transport
        for sink in transport.sinks:
            sink.stop(timeout=2)

    @pytest.fixture
    def url_and_target(self, redis_url: str, stream_key: str) -> tuple[str, str]:
        return with_query(redis_url, stream="not-this-one"), stream_key  # target wins over the URL's stream
