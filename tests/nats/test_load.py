"""NATS under load: a burst a healthy server absorbs whole, and an outage at a steady rate loses nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import nats
import pytest
from streamll_nats import NatsSink

from tests.helpers import BrokerProcess
from tests.load_support import BURST, SLOW_BURST, burst, outage

pytestmark = pytest.mark.nats


async def stored(url: str, stream: str) -> int:
    nc = await nats.connect(url)
    try:
        return (await nc.jetstream().stream_info(stream)).state.messages
    finally:
        await nc.close()


async def burst_reaches_nats(make_sink: Callable[..., NatsSink], url: str, names: tuple[str, str], count: int) -> None:
    subject, stream = names
    sink = make_sink(f"{url}?subject={subject}&stream={stream}")
    await asyncio.to_thread(burst, sink, count)
    assert await asyncio.to_thread(sink.flush, 300), sink.stats
    stats = sink.stats
    assert (stats.delivered, stats.dropped, stats.failed) == (count, 0, 0), stats
    assert await stored(url, stream) == count


async def test_a_burst_to_a_healthy_server_loses_nothing(make_sink, nats_url: str, names: tuple[str, str]) -> None:
    await burst_reaches_nats(make_sink, nats_url, names, BURST)


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_a_200k_burst_to_a_healthy_server_loses_nothing(make_sink, nats_url: str, names: tuple[str, str]) -> None:
    await burst_reaches_nats(make_sink, nats_url, names, SLOW_BURST)


async def outage_loses_nothing(private_nats: BrokerProcess, make_sink, rate: int, seconds: float) -> None:
    url = f"nats://127.0.0.1:{private_nats.port}"
    sink = make_sink(f"{url}?subject=load.events&stream=LOAD&connect_timeout=0.5")
    assert await asyncio.to_thread(sink.flush, 10)
    emitted = await asyncio.to_thread(outage, sink, rate, seconds, private_nats.stop, private_nats.start)
    assert await asyncio.to_thread(sink.flush, 60), sink.stats
    stats = sink.stats
    assert (stats.delivered, stats.dropped, stats.failed) == (emitted, 0, 0), stats
    assert stats.write_errors >= 1 and stats.reconnects >= 1
    assert await stored(url, "LOAD") == emitted  # retried publishes are de-duplicated by Nats-Msg-Id


async def test_a_short_outage_at_a_steady_rate_loses_nothing(private_nats: BrokerProcess, make_sink) -> None:
    await outage_loses_nothing(private_nats, make_sink, rate=500, seconds=2.0)


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_a_10s_outage_at_2000_events_per_second_loses_nothing(private_nats: BrokerProcess, make_sink) -> None:
    await outage_loses_nothing(private_nats, make_sink, rate=2000, seconds=10.0)
