"""RedisSink options that show on the server: per-execution keys, "~" trimming, connections released on stop."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from streamll.core.serialization import decode_event
from streamll.testing.contract import make_execution_events, write
from streamll_redis import RedisSink
from streamll_redis.executions import execution_key, index_key

from tests.helpers import async_wait_until
from tests.redis.conftest import with_query

pytestmark = pytest.mark.redis


async def test_per_execution_copies_each_event_to_its_execution_key(
    redis_url: str, stream_key: str, redis_client: aioredis.Redis, make_sink
) -> None:
    url = with_query(redis_url, stream=stream_key, per_execution="true")
    sink = make_sink(url)
    assert sink.execution_log_url == url
    runs = [make_execution_events(2) for _ in range(2)]
    try:
        await asyncio.to_thread(write, sink, [event for _, events in runs for event in events])
        assert await redis_client.xlen(stream_key) == 8
        for execution, events in runs:
            key = execution_key(stream_key, execution.execution_id)
            copies = [decode_event(fields[b"data"]).event_id for _, fields in await redis_client.xrange(key)]
            assert copies == [event.event_id for event in events]
            assert 0 < await redis_client.ttl(key) <= 86_400
        listed = await redis_client.zrange(index_key(stream_key), 0, -1)
        assert sorted(listed) == sorted(execution.execution_id.encode() for execution, _ in runs)
    finally:
        keys = [execution_key(stream_key, execution.execution_id) for execution, _ in runs]
        await redis_client.delete(index_key(stream_key), *keys)


async def test_without_per_execution_only_the_shared_stream_is_written(
    redis_url: str, stream_key: str, redis_client: aioredis.Redis, make_sink
) -> None:
    sink = make_sink(with_query(redis_url, stream=stream_key))
    assert sink.execution_log_url is None
    execution, events = make_execution_events(1)
    await asyncio.to_thread(write, sink, events)
    assert await redis_client.xlen(stream_key) == len(events)
    assert not await redis_client.exists(execution_key(stream_key, execution.execution_id), index_key(stream_key))


def test_a_stream_given_as_keyword_has_no_execution_log_url(redis_url: str) -> None:
    """The relay reads executions by the sink's URL; a keyword stream is not in it, so none is offered."""
    sink = RedisSink(with_query(redis_url, per_execution="true"), stream="elsewhere")
    assert (sink.stream, sink.execution_log_url) == ("elsewhere", None)
    assert RedisSink.from_url(with_query(redis_url, stream="s", maxlen=7)).maxlen == 7


@pytest.mark.parametrize(("approximate", "expected"), [(True, 101), (False, 100)])
async def test_approximate_trimming_keeps_whole_nodes(
    redis_url: str, stream_key: str, redis_client: aioredis.Redis, make_sink, approximate: bool, expected: int
) -> None:
    """``MAXLEN ~ 100`` never cuts into a node, so 101 small entries stay; exact trimming keeps 100."""
    sink = make_sink(with_query(redis_url, stream=stream_key, maxlen=100, approximate=str(approximate).lower()))
    _, events = make_execution_events(99)
    await asyncio.to_thread(write, sink, events)
    assert await redis_client.xlen(stream_key) == expected


async def test_stop_closes_the_sinks_connection(
    redis_url: str, stream_key: str, redis_client: aioredis.Redis, make_sink
) -> None:
    name = f"sink-{uuid.uuid4().hex[:8]}"
    sink = make_sink(with_query(redis_url, stream=stream_key, client_name=name))
    await asyncio.to_thread(write, sink, make_execution_events(1)[1])

    async def connected() -> bool:
        return any(entry.get("name") == name for entry in await redis_client.client_list())

    async def closed() -> bool:
        return not await connected()

    assert await connected()
    await asyncio.to_thread(sink.stop, 5)
    assert await async_wait_until(closed, what="the sink's connection to close")


async def test_writing_before_open_is_refused(redis_url: str) -> None:
    sink = RedisSink(redis_url)
    with pytest.raises(ConnectionError, match=r"^redis sink is not connected$"):
        await sink.write_batch([])
