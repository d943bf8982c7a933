"""From ``streamll.configure(sinks=["redis://..."])`` and ``emit`` / ``trace`` to a consumer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
import streamll
from streamll.sinks.registry import running_sinks
from streamll.testing.contract import read
from streamll_redis import RedisSink, RedisStreamConsumer

from tests.redis.conftest import with_query

pytestmark = pytest.mark.redis


@pytest.fixture
def restore_configuration() -> Iterator[None]:
    yield
    streamll.configure(sinks=None)


def emit_program() -> list[streamll.Event]:
    """What an application does: a trace with custom events inside, and a standalone emit."""
    emitted: list[streamll.Event] = []
    with streamll.trace("retrieve", data={"query": "q"}) as span:
        emitted.append(span.emit("hit", {"doc": 1}))
        emitted.append(streamll.emit("note", {"text": "inside the trace"}))
    emitted.append(streamll.emit("standalone", {"n": 1}))
    assert streamll.flush(10)
    return emitted


async def test_configure_by_url_emit_and_trace_reach_the_consumer(
    redis_url: str, stream_key: str, redis_client: aioredis.Redis, restore_configuration: None
) -> None:
    url = with_query(redis_url, stream=stream_key)
    async with RedisStreamConsumer(url) as consumer:
        streamll.configure(sinks=[url])
        await asyncio.to_thread(emit_program)
        received = await read(consumer, 5)
        assert await consumer.consume_one(timeout=0.2) is None

    assert [event.event_type for event in received] == ["start", "hit", "note", "end", "standalone"]
    trace_events = received[:4]
    assert len({event.execution_id for event in trace_events}) == 1
    assert [event.sequence for event in trace_events] == [0, 1, 2, 3]
    assert trace_events[0].operation == "trace" and trace_events[0].module_name == "retrieve"
    assert trace_events[0].data == {"query": "q"}
    assert trace_events[1].parent_id == trace_events[0].event_id and trace_events[1].data == {"doc": 1}
    assert "duration_ms" in trace_events[3].data
    assert received[4].execution_id != trace_events[0].execution_id

    sink = next(sink for sink in running_sinks() if isinstance(sink, RedisSink) and sink.stream == stream_key)
    assert streamll.stats()[sink.name].delivered == 5


async def test_sinks_from_the_environment(
    redis_url: str,
    stream_key: str,
    redis_client: aioredis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    restore_configuration: None,
) -> None:
    url = with_query(redis_url, stream=stream_key)
    monkeypatch.setenv("STREAMLL_SINKS", url)
    streamll.configure(sinks=None)
    async with RedisStreamConsumer(url, from_beginning=True) as consumer:
        await asyncio.to_thread(lambda: (streamll.emit("from_env", {"ok": True}), streamll.flush(10)))
        (event,) = await read(consumer, 1)
    assert event.event_type == "from_env" and event.data == {"ok": True}
    for sink in running_sinks():
        if isinstance(sink, RedisSink) and sink.stream == stream_key:
            await asyncio.to_thread(sink.stop, 2)
