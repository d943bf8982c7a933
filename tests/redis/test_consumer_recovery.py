"""RedisStreamConsumer through outages of a private server: reported once, counted, acks ride it out."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from streamll.testing.contract import make_execution_events, read, write
from streamll_redis import RedisStreamConsumer
from streamll_redis.consumer import later_id, stream_id_key

from tests.helpers import async_wait_until
from tests.redis.conftest import PrivateRedis, with_query

pytestmark = pytest.mark.redis


def persistent(private_redis: Callable[..., PrivateRedis], tmp_path: Path) -> PrivateRedis:
    return private_redis("--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path), workdir=tmp_path)


async def test_each_outage_is_reported_once_and_each_recovery_counted(
    private_redis: Callable[..., PrivateRedis], tmp_path: Path, make_sink, make_consumer, caplog
) -> None:
    server = persistent(private_redis, tmp_path)
    sink = make_sink(server.url, stream="s")
    consumer = make_consumer(server.url, stream="s", from_beginning=True)
    consumer.retry_backoff, consumer.retry_backoff_max = 0.05, 0.1
    await consumer.start()
    caplog.set_level(logging.INFO, logger="streamll.redis")
    received = []
    for outage in range(2):
        await asyncio.to_thread(server.stop)
        assert await consumer.consume_one(timeout=0.6) is None  # several failed reconnects meanwhile
        assert (consumer.stats.last_error or "").startswith("ConnectionError: ")
        await asyncio.to_thread(server.start)
        _, events = make_execution_events(1)
        await asyncio.to_thread(write, sink, events)
        received += await read(consumer, len(events))
        assert [event.event_id for event in received[-len(events) :]] == [event.event_id for event in events]
        assert consumer.stats.reconnects == outage + 1
    messages = [record.getMessage() for record in caplog.records if record.name == "streamll.redis"]
    lost = [message for message in messages if "lost the connection (ConnectionError: " in message]
    back = [message for message in messages if message.endswith(": reconnected")]
    assert len(lost) == 2 and len(back) == 2, messages
    assert all(server.url in message for message in lost + back)


async def test_ack_rides_out_a_short_outage(
    private_redis: Callable[..., PrivateRedis], tmp_path: Path, make_sink, make_consumer
) -> None:
    server = persistent(private_redis, tmp_path)
    sink = make_sink(server.url, stream="jobs")
    _, events = make_execution_events(0)
    await asyncio.to_thread(write, sink, events)
    consumer = make_consumer(server.url, stream="jobs", group="g", consumer="w", from_beginning=True, ack_timeout=30)
    consumer.retry_backoff, consumer.retry_backoff_max = 0.05, 0.1
    await consumer.start()
    first, second = await read(consumer, 2)
    await consumer.ack(first)

    await asyncio.to_thread(server.stop)
    acking = asyncio.create_task(consumer.ack(second))
    assert await async_wait_until(lambda: consumer.stats.last_error, what="the failed XACK")
    assert not acking.done()
    await asyncio.to_thread(server.start)
    await asyncio.wait_for(acking, timeout=20)
    client = aioredis.Redis(port=server.port)
    assert (await client.xpending("jobs", "g"))["pending"] == 0
    await client.aclose()
    assert consumer.stats.acked == 2 and consumer.stats.reconnects == 1


async def test_ack_with_a_one_second_timeout_on_a_healthy_server(
    redis_url: str, stream_key: str, redis_client: aioredis.Redis, make_sink, make_consumer
) -> None:
    sink = make_sink(redis_url, stream=stream_key)
    await asyncio.to_thread(write, sink, make_execution_events(0)[1])
    consumer = make_consumer(redis_url, stream=stream_key, group="g", from_beginning=True, ack_timeout=1)
    await consumer.start()
    for event in await read(consumer, 2):
        await consumer.ack(event)
    assert (await redis_client.xpending(stream_key, "g"))["pending"] == 0


async def test_stop_during_an_outage_ends_a_waiting_read(
    private_redis: Callable[..., PrivateRedis], make_consumer
) -> None:
    server = private_redis()
    consumer = make_consumer(server.url, stream="s", group="g")
    await consumer.start()
    await asyncio.to_thread(server.stop)
    waiting = asyncio.create_task(consumer.consume_one())
    assert await async_wait_until(lambda: consumer.stats.last_error, what="the lost connection")
    await consumer.stop()
    assert await asyncio.wait_for(waiting, timeout=5) is None


@pytest.mark.parametrize("group", [None, "g"])
async def test_a_zero_timeout_returns_at_once_on_an_empty_stream(
    redis_url: str, stream_key: str, redis_client: aioredis.Redis, make_consumer, group: str | None
) -> None:
    consumer = make_consumer(redis_url, stream=stream_key, group=group)
    await consumer.start()
    started = time.monotonic()
    assert await consumer.consume_one(timeout=0) is None
    assert time.monotonic() - started < 0.5


async def test_reads_block_for_less_than_the_socket_timeout(
    redis_url: str, stream_key: str, redis_client: aioredis.Redis, make_sink, make_consumer
) -> None:
    """A blocking read longer than ``socket_timeout`` would end in a timeout error and a reconnect."""
    consumer = make_consumer(with_query(redis_url, socket_timeout=0.4), stream=stream_key)
    consumer.max_block = 5.0
    await consumer.start()
    assert await consumer.consume_one(timeout=1.2) is None
    assert (consumer.stats.reconnects, consumer.stats.last_error) == (0, None)


async def test_a_consumer_without_from_beginning_skips_what_the_stream_held(
    redis_url: str, stream_key: str, redis_client: aioredis.Redis, make_sink, make_consumer
) -> None:
    sink = make_sink(redis_url, stream=stream_key)
    await asyncio.to_thread(write, sink, make_execution_events(3)[1])
    consumer = make_consumer(redis_url, stream=stream_key, count=1)
    await consumer.start()
    _, new = make_execution_events(1)
    await asyncio.to_thread(write, sink, new)
    assert [event.event_id for event in await read(consumer, len(new))] == [event.event_id for event in new]
    assert await consumer.consume_one(timeout=0.2) is None


async def test_an_entry_whose_field_names_are_not_utf8_is_reported_readably(
    redis_url: str, stream_key: str, redis_client: aioredis.Redis, make_consumer
) -> None:
    await redis_client.xadd(stream_key, {b"\xffkey": b"value"})
    consumer = make_consumer(redis_url, stream=stream_key, from_beginning=True)
    await consumer.start()
    assert await consumer.consume_one(timeout=0.3) is None
    assert consumer.stats.malformed == 1
    assert "has no 'data' field (fields: \ufffdkey)" in (consumer.stats.last_error or "")


def test_default_consumer_name_is_the_host_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RedisStreamConsumer("redis://h", group="g").consumer == socket.gethostname()
    monkeypatch.setattr(socket, "gethostname", lambda: "")
    assert RedisStreamConsumer("redis://h", group="g").consumer == "streamll"


def test_repr_names_the_group_and_consumer() -> None:
    assert repr(RedisStreamConsumer("redis://h/0?stream=s", group="g", consumer="c")) == (
        "<RedisStreamConsumer 'redis://h:6379/0?stream=s' group='g' consumer='c' started=False>"
    )
    assert repr(RedisStreamConsumer("redis://h/0?stream=s")) == (
        "<RedisStreamConsumer 'redis://h:6379/0?stream=s' started=False>"
    )


def test_entry_ids_compare_by_time_then_sequence() -> None:
    assert stream_id_key("1700000000000-3") == (1700000000000, 3)
    assert stream_id_key("1700000000000") == (1700000000000, 0)
    assert later_id(None, "5-0") == "5-0"
    assert later_id("5-10", "5-9") == "5-10"
    assert later_id("5-9", "5-10") == "5-10"
    assert later_id("5-9", "6-0") == "6-0"


async def test_a_timeout_is_kept_while_waiting_out_the_reconnect_backoff(
    private_redis: Callable[..., PrivateRedis], make_consumer
) -> None:
    server = private_redis()
    consumer = make_consumer(server.url, stream="s")
    consumer.retry_backoff = consumer.retry_backoff_max = 5.0
    await consumer.start()
    await asyncio.to_thread(server.stop)
    assert await consumer.consume_one(timeout=0.2) is None  # the loss is seen; the next attempt is 3.75 s+ away
    started = time.monotonic()
    assert await consumer.consume_one(timeout=0.3) is None
    assert time.monotonic() - started < 2.0
    await asyncio.to_thread(server.start)
    # back, but the backoff (>= 3.75 s after the loss, retry_backoff_max allowing it) is not over: no attempt yet
    assert await consumer.consume_one(timeout=1.2) is None
    assert consumer.stats.reconnects == 0


def test_from_url_reads_the_urls_options() -> None:
    consumer = RedisStreamConsumer.from_url("redis://h:1234/2?stream=s&group=g", consumer="c")
    assert (consumer.options.location, consumer.stream, consumer.group, consumer.consumer) == ("h:1234", "s", "g", "c")


async def test_count_bounds_the_entries_fetched_per_read(
    private_redis: Callable[..., PrivateRedis], make_sink, make_consumer
) -> None:
    server = private_redis()
    sink = make_sink(server.url, stream="s")
    _, events = make_execution_events(8)  # 10 events
    await asyncio.to_thread(write, sink, events)
    consumer = make_consumer(server.url, stream="s", from_beginning=True, count=4)
    await consumer.start()
    assert [event.event_id for event in await read(consumer, len(events))] == [event.event_id for event in events]
    client = aioredis.Redis(port=server.port)
    stats = await client.info("commandstats")
    await client.aclose()
    assert stats["cmdstat_xread"]["calls"] == 3  # 4 + 4 + 2 entries


async def test_starting_at_the_end_of_a_long_stream_does_not_read_it(
    private_redis: Callable[..., PrivateRedis], make_sink, make_consumer
) -> None:
    server = private_redis()
    client = aioredis.Redis(port=server.port)
    async with client.pipeline(transaction=False) as pipe:
        for _ in range(500):
            pipe.xadd("s", {"data": b"x" * 1000})
        await pipe.execute()
    sent_before = (await client.info("stats"))["total_net_output_bytes"]
    consumer = make_consumer(server.url, stream="s")
    await consumer.start()  # finds the newest id: one entry's worth of traffic, not the stream's 500 kB
    sent = (await client.info("stats"))["total_net_output_bytes"] - sent_before
    await client.aclose()
    assert sent < 50_000, sent
    sink = make_sink(server.url, stream="s")
    _, events = make_execution_events(0)
    await asyncio.to_thread(write, sink, events)
    assert [event.event_id for event in await read(consumer, len(events))] == [event.event_id for event in events]
