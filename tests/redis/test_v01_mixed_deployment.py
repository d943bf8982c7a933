"""A rolling upgrade on a real Redis: streamll 0.1.1 (the published wheel) and this code on one stream.

0.1.1 wrote FastStream messages (one ``__data__`` field); this code writes a
``data`` field. The new consumer reads both layouts; ``streamll.sinks.RedisSink``
(0.1's name and signature) writes both, so 0.1.1 consumers keep reading too.
"""

from __future__ import annotations

import asyncio
import json
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dspy
import pytest
import redis
import redis.asyncio as aioredis
import streamll
from streamll.core.events import Event, TokenEvent
from streamll.testing import OfflineLMServer
from streamll_redis import RedisStreamConsumer

from tests.compat.v01_support import extract, printed_events, require_faststream, run_v01

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def v01_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_faststream()
    return extract(tmp_path_factory.mktemp("streamll-0.1.1"))


@pytest.fixture
def server(lm_server: OfflineLMServer) -> Iterator[OfflineLMServer]:
    lm_server.reset()
    yield lm_server
    lm_server.reset()


async def read_all(url: str, stream: str, count: int) -> tuple[list[Event], RedisStreamConsumer]:
    consumer = RedisStreamConsumer(url, stream=stream, from_beginning=True)
    received: list[Event] = []
    async with consumer:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while len(received) < count:
            assert loop.time() < deadline, f"read {len(received)} of {count}"
            event = await consumer.consume_one(timeout=1.0)
            if event is not None:
                received.append(event)
        assert await consumer.consume_one(timeout=0.2) is None  # and nothing more
    return received, consumer


@pytest.fixture(scope="module")
def v01_produced(v01_site: Path, redis_url: str, lm_server: OfflineLMServer) -> Iterator[tuple[str, dict[str, Any]]]:
    """One run of the 0.1.1 producer (it takes seconds to import DSPy): its stream key and its report."""
    stream = f"streamll-test:v01-producer:{uuid.uuid4().hex[:12]}"
    lm_server.reset()
    result = run_v01(v01_site, "producer.py", redis_url, stream, lm_server.api_base)
    yield stream, json.loads(result.stdout.strip().splitlines()[-1])
    client = redis.Redis.from_url(redis_url)
    client.delete(stream)
    client.close()


async def copy_stream(client: aioredis.Redis, source: str, target: str) -> None:
    """Append the entries of ``source`` to ``target`` field for field (the 0.1.1 layout as it was written)."""
    for _entry_id, fields in await client.xrange(source):
        await client.xadd(target, fields)


async def test_new_consumers_read_every_event_a_0_1_1_producer_wrote(
    v01_produced: tuple[str, dict[str, Any]], redis_url: str, stream_key: str, redis_client: aioredis.Redis
) -> None:
    await copy_stream(redis_client, v01_produced[0], stream_key)
    produced = v01_produced[1]
    old_events = produced["events"]
    entries = await redis_client.xrange(stream_key)
    assert {tuple(fields) for _id, fields in entries} == {(b"__data__",)}  # really 0.1.1's layout, every entry

    received, consumer = await read_all(redis_url, stream_key, len(old_events))
    assert consumer.stats.malformed == 0
    assert [e.event_id for e in received] == [e["event_id"] for e in old_events]
    tokens = [e for e in received if isinstance(e, TokenEvent)]
    assert "".join(t.token for t in tokens) == produced["answer"]
    assert {t.field for t in tokens} == {"answer"}
    end = next(e for e in received if e.event_type == "end" and e.data.get("outputs"))
    assert end.data["duration_ms"] == pytest.approx(end.data["duration"] * 1000)
    assert any(e.event_type == "docs_found" and e.data["count"] == 2 for e in received)

    handled: list[str] = []
    handler_consumer = streamll.EventConsumer(redis_url, target=stream_key, from_beginning=True)

    @handler_consumer.on("*")
    def keep(event: Event) -> None:
        handled.append(event.event_id)
        if len(handled) == len(old_events):
            asyncio.get_running_loop().create_task(handler_consumer.stop())

    await asyncio.wait_for(handler_consumer.run(), 30)
    assert handled == [e["event_id"] for e in old_events]


async def test_0_1_1_and_new_consumers_read_a_stream_written_by_0_1_1_and_new_producers(
    v01_site: Path,
    v01_produced: tuple[str, dict[str, Any]],
    redis_url: str,
    stream_key: str,
    redis_client: aioredis.Redis,
    server: OfflineLMServer,
) -> None:
    await copy_stream(redis_client, v01_produced[0], stream_key)
    produced = v01_produced[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from streamll.sinks import RedisSink  # the 0.1 name and signature an upgraded producer still uses

    sink = RedisSink(redis_url=redis_url, stream_key=stream_key)

    @streamll.instrument(stream_fields=["answer"], sinks=[sink])
    class QA(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("question -> answer")

        def forward(self, question: str) -> dspy.Prediction:
            return self.predict(question=question)

    def produce_new() -> str:
        streamll.set_context(conversation_id="conv_new", user=7)
        try:
            with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
                answer = QA()(question="What is machine learning?").answer
            with streamll.trace("done", sinks=[sink]) as ctx:
                ctx.emit("finished")
        finally:
            streamll.set_context(conversation_id=None, user=None)
        assert sink.flush(20), sink.stats
        return str(answer)

    try:
        new_answer = await asyncio.to_thread(produce_new)
        new_count = sink.stats.delivered
    finally:
        await asyncio.to_thread(sink.stop, 5)
    total = len(produced["events"]) + new_count

    # 0.1.1's consumer (FastStream) reads both producers' events
    result = await asyncio.to_thread(run_v01, v01_site, "consumer.py", redis_url, stream_key, "1")
    seen_by_old = printed_events(result.stdout)
    assert len(seen_by_old) == total
    new_tokens = [
        e for e in seen_by_old if e["event_type"] == "token" and e["data"].get("conversation_id") == "conv_new"
    ]
    assert "".join(e["data"]["token"] for e in new_tokens) == new_answer
    assert all(e["tags"] == {"conversation_id": "conv_new", "user": "7"} for e in new_tokens)
    module_end = next(e for e in seen_by_old if e["event_type"] == "end" and e["module_name"] == "QA")
    assert module_end["data"]["duration"] == pytest.approx(module_end["data"]["duration_ms"] / 1000)

    # this code's consumer reads the same stream: nothing lost, nothing twice
    received, consumer = await read_all(redis_url, stream_key, total)
    assert consumer.stats.malformed == 0 and len({e.event_id for e in received}) == total
    assert [e.event_id for e in received] == [e["event_id"] for e in seen_by_old]
