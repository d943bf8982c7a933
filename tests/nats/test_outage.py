"""A private NATS server goes down mid-run and comes back: nothing is lost on either side."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest
from streamll.testing.contract import make_execution_events, read, write
from streamll_nats import NatsSink, NatsStreamConsumer

from tests.helpers import BrokerProcess, wait_until

pytestmark = pytest.mark.nats


async def ack_pending_drains(port: int, stream: str, durable: str, timeout: float = 10.0) -> bool:
    """Poll the durable consumer until no delivered event awaits an ack."""
    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = await nc.jetstream().consumer_info(stream, durable)
            if info.num_ack_pending == 0 and info.num_pending == 0:
                return True
            await asyncio.sleep(0.02)
        return False
    finally:
        await nc.close()


async def test_events_emitted_during_a_server_restart_are_delivered_afterwards(private_nats: BrokerProcess) -> None:
    url = f"nats://127.0.0.1:{private_nats.port}?subject=outage.events&stream=OUTAGE"
    sink = NatsSink(url)
    durable = NatsStreamConsumer(url, durable="survivor", from_beginning=True, ack_wait=2)
    ephemeral = NatsStreamConsumer(url, from_beginning=True)
    await durable.start()
    await ephemeral.start()
    try:
        _, before = make_execution_events(18)
        await asyncio.to_thread(write, sink, before)
        first = await read(durable, len(before))
        for event in first[:-3]:
            await durable.ack(event)  # the last 3 are acknowledged only after the restart
        assert len(await read(ephemeral, len(before))) == len(before)

        await asyncio.to_thread(private_nats.stop)
        _, during = make_execution_events(28)
        for event in during:
            sink.enqueue(event)  # the program goes on; the sink buffers
        assert await asyncio.to_thread(wait_until, lambda: sink.stats.write_errors >= 1)
        assert await durable.consume_one(timeout=0.3) is None
        assert await ephemeral.consume_one(timeout=0.3) is None
        outage = sink.stats
        assert outage.delivered == len(before) and outage.queued == len(during) and outage.dropped == 0

        await asyncio.to_thread(private_nats.start)
        assert await asyncio.to_thread(sink.flush, 30), sink.stats
        after_durable = await read(durable, len(during), timeout=30)
        for event in first[-3:] + after_durable:
            await durable.ack(event)
        assert await ack_pending_drains(private_nats.port, "OUTAGE", "survivor")
        after_ephemeral = await read(ephemeral, len(during), timeout=30)
    finally:
        await durable.stop()
        await ephemeral.stop()
        await asyncio.to_thread(sink.stop, 5)

    expected = [e.event_id for e in during]
    assert [e.event_id for e in after_durable] == expected
    assert [e.event_id for e in after_ephemeral] == expected
    stats = sink.stats
    assert stats.received == stats.delivered == len(before) + len(during)
    assert stats.dropped == 0 and stats.failed == 0
    assert stats.write_errors >= 1 and stats.retries >= 1 and stats.reconnects >= 1 and stats.last_error
    assert durable.stats.reconnects >= 1 and ephemeral.stats.reconnects >= 1
