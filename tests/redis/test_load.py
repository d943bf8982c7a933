"""Redis under load: a burst a healthy server absorbs whole, and an outage at a steady rate loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from streamll_redis import RedisSink

from tests.load_support import BURST, SLOW_BURST, burst, outage
from tests.redis.conftest import PrivateRedis

pytestmark = pytest.mark.redis


def burst_reaches_redis(make_sink: Callable[..., RedisSink], url: str, stream: str, count: int) -> None:
    sink = make_sink(url, stream=stream, maxlen=0)
    burst(sink, count)
    assert sink.flush(300), sink.stats
    stats = sink.stats
    assert (stats.delivered, stats.dropped, stats.failed) == (count, 0, 0), stats
    client = redis.Redis.from_url(url)
    try:
        assert client.xlen(stream) == count
    finally:
        client.delete(stream)
        client.close()


def test_a_burst_to_a_healthy_server_loses_nothing(make_sink, redis_url: str, stream_key: str) -> None:
    burst_reaches_redis(make_sink, redis_url, stream_key, BURST)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_200k_burst_to_a_healthy_server_loses_nothing(make_sink, redis_url: str, stream_key: str) -> None:
    burst_reaches_redis(make_sink, redis_url, stream_key, SLOW_BURST)


async def outage_loses_nothing(
    private_redis: Callable[..., PrivateRedis], tmp_path: Path, make_sink, rate: int, seconds: float
) -> None:
    server = private_redis("--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(tmp_path), workdir=tmp_path)
    sink = make_sink(server.url, stream="events", maxlen=0)
    assert await asyncio.to_thread(sink.flush, 10)
    emitted = await asyncio.to_thread(outage, sink, rate, seconds, server.stop, server.start)
    assert await asyncio.to_thread(sink.flush, 60), sink.stats
    stats = sink.stats
    assert (stats.delivered, stats.dropped, stats.failed) == (emitted, 0, 0), stats
    assert stats.write_errors >= 1 and stats.reconnects >= 1
    client = redis.Redis.from_url(server.url)
    try:
        assert client.xlen("events") >= emitted  # at least once: a pipeline cut off mid-way is written again
    finally:
        client.close()


async def test_a_short_outage_at_a_steady_rate_loses_nothing(private_redis, tmp_path: Path, make_sink) -> None:
    await outage_loses_nothing(private_redis, tmp_path, make_sink, rate=500, seconds=2.0)


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_10s_outage_at_2000_events_per_second_loses_nothing(private_redis, tmp_path: Path, make_sink) -> None:
    await outage_loses_nothing(private_redis, tmp_path, make_sink, rate=2000, seconds=10.0)
