"""RedisStreamConsumer against a real server: positions, groups, redelivery, malformed entries."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from streamll.core.events import Event
from streamll.errors import ConsumerError
from streamll.testing.contract import make_execution_events, read, write
from streamll_redis import RedisStreamConsumer

from tests.helpers import async_wait_until
from tests.redis.conftest import with_query

pytestmark = pytest.mark.redis


def ids(events: list[Event]) -> list[str]:
    return [event.event_id for event in events]


async def pending_count(client: aioredis.Redis, stream: str, group: str) -> int:
    return int((await client.xpending(stream, group))["pending"])


@pytest.fixture
def url(redis_url: str) -> str:
    return redis_url


async def test_documented_usage(url: str, stream_key: str, redis_client: aioredis.Redis, make_sink) -> None:
    """The example from the token-streaming spec: start, consume_one() with no timeout, stop."""
    consumer = RedisStreamConsumer(url=url, stream=stream_key)
    await consumer.start()
    sink = make_sink(url, stream=stream_key)
    _, events = make_execution_events(2)
    await asyncio.to_thread(write, sink, events)
    first = await asyncio.wait_for(consumer.consume_one(), timeout=10)
    assert first is not None and first.event_type == "start"
    token = await asyncio.wait_for(consumer.consume_one(), timeout=10)
    assert token is not None and token.event_type == "token"
    assert (token.data.get("field"), token.data.get("token"), token.data.get("token_index")) == ("answer", " tok0", 0)
    await consumer.stop()
    with pytest.raises(ConsumerError, match="not started"):
        await consumer.consume_one(timeout=0.1)


async def test_restart_without_group_resumes_after_the_last_event(
    url: str, stream_key: str, redis_client: aioredis.Redis, make_sink, make_consumer
) -> None:
    sink = make_sink(url, stream=stream_key)
    _, events = make_execution_events(8)  # 10 events
    await asyncio.to_thread(write, sink, events)
    consumer = make_consumer(url, stream=stream_key, from_beginning=True, count=4)
    await consumer.start()
    first = await read(consumer, 3)
    await consumer.stop()  # entries fetched but not returned are read again after a restart
    await consumer.start()
    rest = await read(consumer, 7)
    assert ids(first + rest) == ids(events)
    assert await consumer.consume_one(timeout=0.2) is None
    assert consumer.position == (await redis_client.xrevrange(stream_key, count=1))[0][0].decode()


async def test_group_is_created_with_mkstream(
    url: str, stream_key: str, redis_client: aioredis.Redis, make_consumer
) -> None:
    consumer = make_consumer(url, stream=stream_key, group="readers")
    await consumer.start()
    groups = await redis_client.xinfo_groups(stream_key)
    assert [group["name"] for group in groups] == [b"readers"]
    assert await consumer.consume_one(timeout=0.2) is None


async def test_group_from_beginning_decides_where_a_new_group_starts(
    url: str, stream_key: str, redis_client: aioredis.Redis, make_sink, make_consumer
) -> None:
    sink = make_sink(url, stream=stream_key)
    _, old = make_execution_events(2)
    await asyncio.to_thread(write, sink, old)

    from_start = make_consumer(url, stream=stream_key, group="all", from_beginning=True)
    only_new = make_consumer(url, stream=stream_key, group="new")
    await from_start.start()
    await only_new.start()
    _, new = make_execution_events(1)
    await asyncio.to_thread(write, sink, new)

    assert ids(await read(from_start, len(old) + len(new))) == ids(old + new)
    assert ids(await read(only_new, len(new))) == ids(new)
    assert await only_new.consume_one(timeout=0.2) is None


async def test_unacked_entries_are_redelivered_after_a_restart(
    url: str, stream_key: str, redis_client: aioredis.Redis, make_sink, make_consumer
) -> None:
    sink = make_sink(url, stream=stream_key)
    _, events = make_execution_events(6)  # 8 events
    await asyncio.to_thread(write, sink, events)

    crashed = make_consumer(url, stream=stream_key, group="workers", consumer="w1", from_beginning=True)
    await crashed.start()
    seen = await read(crashed, 5)
    for event in seen[:2]:
        await crashed.ack(event)
    await crashed.stop()  # 3 delivered but un-acked, 3 fetched but never returned: all pending on w1
    assert await pending_count(redis_client, stream_key, "workers") == 6

    restarted = make_consumer(url, stream=stream_key, group="workers", consumer="w1")
    await restarted.start()
    again = await read(restarted, 6)
    assert ids(again) == ids(events[2:])
    for event in again:
        await restarted.ack(event)
    assert await pending_count(redis_client, stream_key, "workers") == 0
    assert await restarted.consume_one(timeout=0.2) is None
    assert restarted.stats.acked == 6


async def test_consumers_in_one_group_share_the_entries(
    url: str, stream_key: str, redis_client: aioredis.Redis, make_sink, make_consumer
) -> None:
    sink = make_sink(url, stream=stream_key)
    _, events = make_execution_events(18)  # 20 events
    first = make_consumer(url, stream=stream_key, group="pool", consumer="a", count=5)
    second = make_consumer(url, stream=stream_key, group="pool", consumer="b", count=5)
    await first.start()
    await second.start()
    await asyncio.to_thread(write, sink, events)

    got: list[Event] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(got) < len(events) and loop.time() < deadline:
        for consumer in (first, second):
            event = await consumer.consume_one(timeout=0.05)
            if event is not None:
                got.append(event)
                await consumer.ack(event)
    assert sorted(ids(got)) == sorted(ids(events))  # each entry went to exactly one consumer
    assert first.stats.consumed > 0 and second.stats.consumed > 0
    assert await pending_count(redis_client, stream_key, "pool") == 0


async def test_malformed_entries_are_skipped_and_acked_in_a_group(
    url: str, stream_key: str, redis_client: aioredis.Redis, make_sink, make_consumer, caplog: pytest.LogCaptureFixture
) -> None:
    sink = make_sink(url, stream=stream_key)
    await redis_client.xadd(stream_key, {"data": b"\xff\xfe not json"})
    await redis_client.xadd(stream_key, {"data": b'{"event_type": "token", "sequence": "not a number"}'})
    await redis_client.xadd(stream_key, {"something_else": b"no data field"})
    await redis_client.xadd(stream_key, {"data": b'{"event_type": "x", "schema_version": "2"}'})
    _, events = make_execution_events(2)
    await asyncio.to_thread(write, sink, events)

    consumer = make_consumer(url, stream=stream_key, group="g", from_beginning=True)
    await consumer.start()
    received = await read(consumer, len(events))
    for event in received:
        await consumer.ack(event)
    assert ids(received) == ids(events)
    assert consumer.stats.malformed == 4
    reported = [record.getMessage() for record in caplog.records if "malformed" in record.getMessage()]
    assert len(reported) == 4
    assert any("no 'data' field (fields: something_else)" in message for message in reported)
    assert any("not JSON" in message for message in reported)
    assert any("unsupported schema_version" in message for message in reported)
    assert await pending_count(redis_client, stream_key, "g") == 0


async def test_entry_deleted_while_pending_is_skipped(
    url: str, stream_key: str, redis_client: aioredis.Redis, make_sink, make_consumer
) -> None:
    sink = make_sink(url, stream=stream_key)
    _, events = make_execution_events(1)
    await asyncio.to_thread(write, sink, events)
    first = make_consumer(url, stream=stream_key, group="g", consumer="c", from_beginning=True)
    await first.start()
    taken = await read(first, 1)
    await first.stop()
    entry_id = (await redis_client.xrange(stream_key, count=1))[0][0]
    await redis_client.xdel(stream_key, entry_id)

    again = make_consumer(url, stream=stream_key, group="g", consumer="c")
    await again.start()
    rest = await read(again, 2)
    assert ids(taken) == ids(events[:1]) and ids(rest) == ids(events[1:])
    assert again.stats.malformed == 1 and "deleted" in (again.stats.last_error or "")


async def test_ack_rules(url: str, stream_key: str, redis_client: aioredis.Redis, make_sink, make_consumer) -> None:
    sink = make_sink(url, stream=stream_key)
    _, events = make_execution_events(1)
    await asyncio.to_thread(write, sink, events)
    consumer = make_consumer(url, stream=stream_key, group="g", from_beginning=True)
    await consumer.start()
    event = (await read(consumer, 1))[0]
    await consumer.ack(event)
    with pytest.raises(ConsumerError, match="already acked"):
        await consumer.ack(event)
    unacked = (await read(consumer, 1))[0]
    await consumer.stop()
    with pytest.raises(ConsumerError, match="stopped"):
        await consumer.ack(unacked)


async def test_acking_without_a_group_is_allowed(
    url: str, stream_key: str, redis_client: aioredis.Redis, make_sink, make_consumer
) -> None:
    sink = make_sink(url, stream=stream_key)
    _, events = make_execution_events(1)
    await asyncio.to_thread(write, sink, events)
    async with make_consumer(url, stream=stream_key, from_beginning=True) as consumer:
        for event in await read(consumer, len(events)):
            await consumer.ack(event)
        assert consumer.stats.acked == len(events)


async def test_group_destroyed_while_reading_is_recreated(
    url: str, stream_key: str, redis_client: aioredis.Redis, make_sink, make_consumer
) -> None:
    sink = make_sink(url, stream=stream_key)
    consumer = make_consumer(url, stream=stream_key, group="fragile")
    await consumer.start()
    _, first = make_execution_events(1)
    await asyncio.to_thread(write, sink, first)
    assert ids(await read(consumer, len(first))) == ids(first)

    await redis_client.xgroup_destroy(stream_key, "fragile")
    _, second = make_execution_events(1)
    await asyncio.to_thread(write, sink, second)
    assert ids(await read(consumer, len(second))) == ids(second)


async def test_reader_without_group_keeps_no_per_event_state(
    url: str, stream_key: str, redis_client: aioredis.Redis, make_sink, make_consumer
) -> None:
    sink = make_sink(url, stream=stream_key)
    _, events = make_execution_events(48)
    await asyncio.to_thread(write, sink, events)
    consumer = make_consumer(url, stream=stream_key, from_beginning=True)
    await consumer.start()
    assert ids(await read(consumer, len(events))) == ids(events)
    assert consumer._handles == {}  # a long-running tail never acks; nothing may accumulate per event


BLOCK_SECONDS = 20.0
"""How long the consumer's single read blocks in the stop test: stop() must not wait for it to run out."""


async def blocked_client(client: aioredis.Redis, name: str) -> dict[str, Any] | None:
    """The connection named ``name`` while Redis holds it in a blocking read, else None."""
    for entry in await client.client_list():
        if entry.get("name") == name and "b" in entry.get("flags", ""):
            return entry
    return None


@pytest.mark.parametrize("group", [None, "g"])
async def test_stop_from_another_task_ends_a_waiting_read(
    url: str, stream_key: str, redis_client: aioredis.Redis, make_consumer, group: str | None
) -> None:
    name = f"stop-test-{uuid.uuid4().hex[:8]}"
    consumer = make_consumer(with_query(url, client_name=name, socket_timeout=60), stream=stream_key, group=group)
    consumer.max_block = BLOCK_SECONDS
    await consumer.start()
    waiting = asyncio.create_task(consumer.consume_one())  # no timeout: waits for an event
    assert await async_wait_until(lambda: blocked_client(redis_client, name), what="the blocking read")
    started = time.monotonic()
    await consumer.stop()
    assert await asyncio.wait_for(waiting, timeout=BLOCK_SECONDS / 2) is None
    elapsed = time.monotonic() - started
    assert elapsed < BLOCK_SECONDS / 10, f"stop() took {elapsed:.2f}s: it waited for the blocking read to end"

    async def released() -> bool:  # the server notices the closed connection a moment later under load
        return await blocked_client(redis_client, name) is None

    assert await async_wait_until(released, 2.0, what="the server to drop the blocked connection")
