"""A private redis-server restarted mid-run: the sink buffers and delivers, the consumer resumes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from streamll.core.events import Event
from streamll.testing.contract import make_execution_events, read, write

from tests.redis.conftest import PrivateRedis, async_wait_until

pytestmark = pytest.mark.redis


def ids(events: list[Event]) -> list[str]:
    return [event.event_id for event in events]


@pytest.mark.parametrize("persistent", [True, False], ids=["appendonly", "no-persistence"])
@pytest.mark.parametrize("group", [None, "survivors"], ids=["xread", "group"])
async def test_restart_mid_run_loses_nothing(
    private_redis: Callable[..., PrivateRedis],
    tmp_path: Path,
    make_sink,
    make_consumer,
    group: str | None,
    persistent: bool,
) -> None:
    if persistent:
        server = private_redis(
            "--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path), workdir=tmp_path
        )
    else:
        server = private_redis()
    sink = make_sink(server.url, stream="events")
    consumer = make_consumer(server.url, stream="events", group=group)
    await consumer.start()

    _, before = make_execution_events(3)
    await asyncio.to_thread(write, sink, before)
    got_before = await read(consumer, len(before))
    for event in got_before:
        await consumer.ack(event)

    await asyncio.to_thread(server.stop)
    assert await consumer.consume_one(timeout=0.3) is None  # the consumer waits the outage out
    _, during = make_execution_events(10)
    for event in during:
        sink.enqueue(event)  # the program keeps running; events wait in the sink's buffer
    # A failed write, then at least one failed reconnect, before the server returns.
    assert await async_wait_until(lambda: sink.stats.write_errors >= 2, timeout=10), sink.stats
    assert sink.stats.delivered == len(before) and sink.stats.queued == len(during)

    await asyncio.to_thread(server.start)
    assert await asyncio.to_thread(sink.flush, 20), sink.stats
    got_during = await read(consumer, len(during))
    for event in got_during:
        await consumer.ack(event)

    assert ids(got_before) == ids(before)
    assert ids(got_during) == ids(during)
    assert await consumer.consume_one(timeout=0.2) is None  # nothing twice
    stats = sink.stats
    assert stats.dropped == 0 and stats.delivered == len(before) + len(during)
    assert stats.write_errors >= 2 and stats.retries >= 1 and stats.reconnects >= 1
    assert consumer.stats.reconnects >= 1


async def test_restarted_group_consumer_gets_its_pending_entries_from_a_restarted_server(
    private_redis: Callable[..., PrivateRedis], tmp_path: Path, make_sink, make_consumer
) -> None:
    server = private_redis("--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path), workdir=tmp_path)
    sink = make_sink(server.url, stream="jobs")
    _, events = make_execution_events(4)
    await asyncio.to_thread(write, sink, events)

    first = make_consumer(server.url, stream="jobs", group="g", consumer="worker-1", from_beginning=True)
    await first.start()
    taken = await read(first, 3)
    await first.ack(taken[0])
    await first.stop()  # the process "dies" with entries pending

    await asyncio.to_thread(server.restart)

    second = make_consumer(server.url, stream="jobs", group="g", consumer="worker-1")
    await second.start()
    again = await read(second, len(events) - 1)
    assert ids(again) == ids(events[1:])
