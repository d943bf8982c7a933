"""RedisSink against a real server: entry layout, ordering, trimming, credentials, unreachable servers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from streamll.core.serialization import decode_event, event_to_dict
from streamll.testing.contract import make_execution_events, write
from streamll_redis import RedisSink, RedisStreamConsumer

from tests.helpers import free_port, wait_until
from tests.redis.conftest import PrivateRedis, with_query

pytestmark = pytest.mark.redis


async def test_entry_layout(redis_url: str, stream_key: str, redis_client: aioredis.Redis, make_sink) -> None:
    sink = make_sink(with_query(redis_url, stream=stream_key))
    execution, events = make_execution_events(3)
    await asyncio.to_thread(write, sink, events)

    entries = await redis_client.xrange(stream_key)
    assert len(entries) == len(events)
    for (_entry_id, fields), event in zip(entries, events, strict=True):
        assert set(fields) == {b"data", b"event_type", b"execution_id"}
        assert fields[b"event_type"] == event.event_type.encode()
        assert fields[b"execution_id"] == execution.execution_id.encode()
        assert event_to_dict(decode_event(fields[b"data"])) == event_to_dict(event)


async def test_events_of_each_execution_stay_in_order_across_batches(
    redis_url: str, stream_key: str, redis_client: aioredis.Redis, make_sink
) -> None:
    sink = make_sink(redis_url, stream=stream_key, batch_size=7)
    runs = [make_execution_events(40)[1] for _ in range(3)]
    interleaved = [event for group in zip(*runs, strict=True) for event in group]

    def emit_from_threads() -> None:
        # Each execution emits from its own thread, as concurrent requests would.
        threads = [threading.Thread(target=lambda run=run: [sink.enqueue(e) for e in run]) for run in runs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sink.flush(20)

    await asyncio.to_thread(emit_from_threads)
    entries = await redis_client.xrange(stream_key)
    assert len(entries) == len(interleaved)
    on_stream = [decode_event(fields[b"data"]) for _, fields in entries]
    for run in runs:
        mine = [event for event in on_stream if event.execution_id == run[0].execution_id]
        assert [event.event_id for event in mine] == [event.event_id for event in run]
        assert [event.sequence for event in mine] == list(range(len(run)))
    assert sink.stats.batches >= len(interleaved) // 7


async def test_maxlen_trims_approximately(
    redis_url: str, stream_key: str, redis_client: aioredis.Redis, make_sink
) -> None:
    sink = make_sink(with_query(redis_url, stream=stream_key, maxlen=100))
    _, events = make_execution_events(1500)
    await asyncio.to_thread(write, sink, events)
    length = await redis_client.xlen(stream_key)
    # "~" trims whole radix-tree nodes (100 entries each by default): at least maxlen stay, not much more.
    assert 100 <= length <= 300
    newest = decode_event((await redis_client.xrevrange(stream_key, count=1))[0][1][b"data"])
    assert newest.event_id == events[-1].event_id


async def test_maxlen_exact_and_unbounded(
    redis_url: str, stream_key: str, redis_client: aioredis.Redis, make_sink
) -> None:
    exact = make_sink(redis_url, stream=stream_key, maxlen=25, approximate=False)
    _, events = make_execution_events(200)
    await asyncio.to_thread(write, exact, events)
    assert await redis_client.xlen(stream_key) == 25

    await redis_client.delete(stream_key)
    unbounded = make_sink(with_query(redis_url, stream=stream_key, maxlen=0))
    await asyncio.to_thread(write, unbounded, events)
    assert await redis_client.xlen(stream_key) == len(events)


def test_emit_never_waits_on_an_unreachable_server(make_sink) -> None:
    sink = make_sink(f"redis://127.0.0.1:{free_port()}/0?stream=nowhere", buffer_size=50)
    _, events = make_execution_events(198)
    for event in events:
        sink.enqueue(event)  # returns at once: the server is only contacted from the worker thread
    stats = sink.stats
    assert stats.received == 200 and stats.delivered == 0
    assert stats.dropped == 150 and stats.queued == 50  # bounded buffer, drop_oldest policy, every drop counted
    assert not sink.flush(0.2)
    assert wait_until(lambda: "open: ConnectionError" in (sink.stats.last_error or ""))
    sink.stop(timeout=0.3)
    final = sink.stats
    assert final.dropped == 200 and final.write_errors >= 1 and final.delivered == 0 and final.queued == 0


async def test_password_from_url_and_environment(
    private_redis: Callable[..., PrivateRedis], monkeypatch: pytest.MonkeyPatch, make_sink
) -> None:
    server = private_redis("--requirepass", "hunter2-secret")
    _, events = make_execution_events(2)

    in_url = make_sink(f"redis://:hunter2-secret@127.0.0.1:{server.port}/0?stream=s1")
    await asyncio.to_thread(write, in_url, events)

    monkeypatch.setenv("STREAMLL_REDIS_PASSWORD", "hunter2-secret")
    from_env = make_sink(f"redis://127.0.0.1:{server.port}/0?stream=s2")
    await asyncio.to_thread(write, from_env, events)

    check = aioredis.Redis(port=server.port, password="hunter2-secret")
    assert await check.xlen("s1") == len(events) and await check.xlen("s2") == len(events)
    await check.aclose()

    monkeypatch.setenv("STREAMLL_REDIS_PASSWORD", "wrong-secret")
    wrong = make_sink(f"redis://127.0.0.1:{server.port}/0?stream=s3")
    wrong.enqueue(events[0])
    assert not await asyncio.to_thread(wrong.flush, 0.5)
    stats = wrong.stats
    assert stats.write_errors >= 1 and stats.delivered == 0
    assert "wrong-secret" not in (stats.last_error or "") and "hunter2" not in (stats.last_error or "")
    await asyncio.to_thread(wrong.stop, 0.2)
    assert wrong.stats.dropped == 1


async def test_unix_socket(
    private_redis: Callable[..., PrivateRedis], tmp_path: Path, make_sink, make_consumer
) -> None:
    socket_path = tmp_path / "redis.sock"
    private_redis("--unixsocket", str(socket_path), "--unixsocketperm", "700")
    url = f"unix://{socket_path}?db=1&stream=over-unix"
    sink = make_sink(url)
    _, events = make_execution_events(4)
    await asyncio.to_thread(write, sink, events)
    consumer = make_consumer(url, from_beginning=True)
    await consumer.start()
    received = [await consumer.consume_one(timeout=5) for _ in events]
    assert [event.event_id for event in received if event] == [event.event_id for event in events]


def test_repr_and_name(redis_url: str) -> None:
    sink = RedisSink("redis://127.0.0.1:6379/3?stream=orders")
    assert sink.name == "redis:orders@127.0.0.1:6379/3"
    assert repr(sink) == "<RedisSink 'redis://127.0.0.1:6379/3?stream=orders' running=False>"
    assert "stream=orders" in repr(RedisStreamConsumer("redis://127.0.0.1:6379/3?stream=orders"))
