"""A private redis-server restarted mid-run: the sink buffers and delivers, the consumer resumes."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from streamll.core.events import Event
from streamll.errors import ConsumerError
from streamll.testing.contract import make_execution_events, read, write

from tests.helpers import async_wait_until
from tests.redis.conftest import PrivateRedis

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


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
async def test_ack_gives_up_after_ack_timeout_and_the_entry_stays_pending(
    private_redis: Callable[..., PrivateRedis], tmp_path: Path, make_sink, make_consumer, outage: str
) -> None:
    server = private_redis("--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path), workdir=tmp_path)
    sink = make_sink(server.url, stream="jobs")
    _, events = make_execution_events(1)
    await asyncio.to_thread(write, sink, events)
    consumer = make_consumer(server.url, stream="jobs", group="g", consumer="w", from_beginning=True, ack_timeout=1)
    await consumer.start()
    first = await consumer.consume_one(timeout=10)
    assert first is not None and first.event_id == events[0].event_id

    assert server.process is not None
    if outage == "stopped":
        await asyncio.to_thread(server.stop)
    else:
        server.process.send_signal(signal.SIGSTOP)  # accepts connections, never answers
    started = time.monotonic()
    with pytest.raises(ConsumerError, match=r"cannot ack entry .* did not answer within 1s"):
        await consumer.ack(first)
    assert time.monotonic() - started < 5
    await consumer.stop()

    if outage == "frozen":  # the XACK sent to the frozen server may still be applied when it wakes
        server.process.send_signal(signal.SIGCONT)
        return
    await asyncio.to_thread(server.start)
    again = make_consumer(server.url, stream="jobs", group="g", consumer="w")
    await again.start()
    redelivered = await again.consume_one(timeout=10)
    assert redelivered is not None and redelivered.event_id == first.event_id
    await again.ack(redelivered)
