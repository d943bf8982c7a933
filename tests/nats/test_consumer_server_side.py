"""NatsStreamConsumer as the server sees it: the pull consumer it creates, zero timeouts, outages reported once."""

from __future__ import annotations

import asyncio
import logging
import time

import nats
import pytest
from nats.js import JetStreamContext, api
from streamll.errors import ConsumerError
from streamll.testing.contract import make_execution_events, read, write
from streamll_nats import NatsSink, NatsStreamConsumer

from tests.helpers import BrokerProcess, async_wait_until
from tests.nats.conftest import MakeSink

pytestmark = pytest.mark.nats


async def test_a_durable_consumer_is_created_with_explicit_acks_on_the_subject(
    nats_url: str, names: tuple[str, str], js: JetStreamContext
) -> None:
    subject, stream = names
    url = f"{nats_url}?subject={subject}&stream={stream}"
    async with NatsStreamConsumer(url, durable="billing", ack_wait=7, from_beginning=True):
        config = (await js.consumer_info(stream, "billing")).config
    assert (config.durable_name, config.name) == ("billing", "billing")
    assert (config.ack_policy, config.ack_wait, config.filter_subject) == (api.AckPolicy.EXPLICIT, 7.0, subject)
    assert config.deliver_policy == api.DeliverPolicy.ALL
    async with NatsStreamConsumer(url, durable="later"):
        assert (await js.consumer_info(stream, "later")).config.deliver_policy == api.DeliverPolicy.NEW


async def test_an_ephemeral_consumer_needs_no_acks_and_expires_when_idle(
    nats_url: str, names: tuple[str, str], js: JetStreamContext
) -> None:
    subject, stream = names
    async with NatsStreamConsumer(f"{nats_url}?subject={subject}&stream={stream}", inactive_threshold=9):
        (info,) = await js.consumers_info(stream)
    config = info.config
    assert config.durable_name is None and config.name == info.name
    assert (config.ack_policy, config.inactive_threshold, config.filter_subject) == (api.AckPolicy.NONE, 9.0, subject)
    assert config.deliver_policy == api.DeliverPolicy.NEW


async def test_a_zero_timeout_polls_once(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, make_sink: MakeSink
) -> None:
    subject, stream = names
    url = f"{nats_url}?subject={subject}&stream={stream}"
    async with NatsStreamConsumer(url, from_beginning=True) as consumer:
        started = time.monotonic()
        assert await consumer.consume_one(timeout=0) is None
        assert time.monotonic() - started < 1.0
        _, events = make_execution_events(0)
        await asyncio.to_thread(write, make_sink(url), events)
        received = []
        for _ in range(200):
            event = await consumer.consume_one(timeout=0)
            if event is not None:
                received.append(event.event_id)
            if len(received) == len(events):
                break
        assert received == [event.event_id for event in events]
        assert consumer._handles == {}  # an ephemeral reader acks nothing, so it keeps nothing per event


async def test_each_outage_is_reported_once(private_nats: BrokerProcess, caplog: pytest.LogCaptureFixture) -> None:
    url = f"nats://127.0.0.1:{private_nats.port}?subject=twice.events&stream=TWICE"
    sink = NatsSink(url)
    caplog.set_level(logging.WARNING, logger="streamll")
    consumer = NatsStreamConsumer(url, durable="d", from_beginning=True)
    await consumer.start()
    try:
        for _ in range(2):
            await asyncio.to_thread(private_nats.stop)
            assert await consumer.consume_one(timeout=1.5) is None  # several failed attempts meanwhile
            assert consumer.stats.last_error
            await asyncio.to_thread(private_nats.start)
            assert await consumer.consume_one(timeout=1.0) is None  # reconnected, nothing new yet
            _, events = make_execution_events(0)
            await asyncio.to_thread(write, sink, events, 30)
            for event in await read(consumer, len(events)):
                await consumer.ack(event)
            # acks are sent without waiting for the server: let them land before the next outage cuts the line
            await async_wait_until(lambda: nothing_pending(private_nats.port), 10, what="the acks to reach the server")
    finally:
        await consumer.stop()
        await asyncio.to_thread(sink.stop, 5)
    failures = [r.getMessage() for r in caplog.records if r.getMessage().startswith("streamll consumer: pull failed (")]
    assert len(failures) == 2, failures


async def nothing_pending(port: int) -> bool:
    """True when the durable consumer ``d`` of stream TWICE has every delivered event acknowledged."""
    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    try:
        info = await nc.jetstream().consumer_info("TWICE", "d")
        return (info.num_ack_pending, info.num_pending) == (0, 0)
    finally:
        await nc.close()


async def test_an_ack_while_disconnected_says_so(private_nats: BrokerProcess) -> None:
    url = f"nats://127.0.0.1:{private_nats.port}?subject=held.events&stream=HELD"
    sink = NatsSink(url)
    consumer = NatsStreamConsumer(url, durable="d", from_beginning=True)
    await consumer.start()
    try:
        await asyncio.to_thread(write, sink, make_execution_events(0)[1])
        first, second = await read(consumer, 2)
        await consumer.ack(first)
        await asyncio.to_thread(private_nats.stop)
        for _ in range(50):  # until a reconnect attempt was refused: the old connection is gone
            await consumer.consume_one(timeout=0.1)
            if (consumer.stats.last_error or "").startswith("ConnectionRefusedError"):
                break
        with pytest.raises(ConsumerError, match=r"^not connected to NATS; the event will be delivered again after"):
            await consumer.ack(second)
        assert consumer.stats.acked == 1
    finally:
        await consumer.stop()
        await asyncio.to_thread(sink.stop, 1)
