"""NatsStreamConsumer: durable resume, redelivery after ack_wait, shared durables, ephemeral readers."""

from __future__ import annotations

import asyncio

import pytest
from nats.js import JetStreamContext
from streamll.errors import ConfigurationError
from streamll.testing.contract import make_execution_events, read, write
from streamll_nats import NatsStreamConsumer

from tests.nats.conftest import MakeSink

pytestmark = pytest.mark.nats


async def test_durable_consumer_resumes_after_restart_from_its_last_ack(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, make_sink: MakeSink
) -> None:
    subject, stream = names
    url = f"{nats_url}?subject={subject}&stream={stream}"
    _, events = make_execution_events(8)  # 10 events
    await asyncio.to_thread(write, make_sink(url), events)
    async with NatsStreamConsumer(url, durable="worker", from_beginning=True) as first:
        seen = await read(first, 5)
        for event in seen[:3]:
            await first.ack(event)  # events 3 and 4 were read but not acknowledged
    async with NatsStreamConsumer(url, durable="worker", from_beginning=True) as second:
        rest = await read(second, len(events) - 3)
        for event in rest:
            await second.ack(event)
        assert await second.consume_one(timeout=0.3) is None
    assert [e.event_id for e in seen[:3] + rest] == [e.event_id for e in events]
    info = await js.consumer_info(stream, "worker")
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_an_unacknowledged_event_is_delivered_again_after_ack_wait(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, make_sink: MakeSink
) -> None:
    subject, stream = names
    url = f"{nats_url}?subject={subject}&stream={stream}"
    _, events = make_execution_events(0)  # start and end
    await asyncio.to_thread(write, make_sink(url), events)
    async with NatsStreamConsumer(url, durable="slow", from_beginning=True, ack_wait=0.5) as consumer:
        first = await read(consumer, 2)
        await consumer.ack(first[1])
        again = await read(consumer, 1, timeout=10)  # first[0] was never acknowledged
        await consumer.ack(again[0])
        assert await consumer.consume_one(timeout=0.8) is None  # acknowledged: not delivered a third time
    assert again[0].event_id == first[0].event_id
    assert consumer.stats.consumed == 3 and consumer.stats.acked == 2


async def test_consumers_sharing_a_durable_split_the_events(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, make_sink: MakeSink
) -> None:
    subject, stream = names
    url = f"{nats_url}?subject={subject}&stream={stream}"
    _, events = make_execution_events(38)  # 40 events
    await asyncio.to_thread(write, make_sink(url), events)
    one = NatsStreamConsumer(url, durable="pool", from_beginning=True, fetch_batch=5)
    two = NatsStreamConsumer(url, durable="pool", from_beginning=True, fetch_batch=5)
    async with one, two:
        seen: dict[str, list[str]] = {"one": [], "two": []}
        while len(seen["one"]) + len(seen["two"]) < len(events):
            for name, consumer in (("one", one), ("two", two)):
                event = await consumer.consume_one(timeout=2)
                if event is not None:
                    seen[name].append(event.event_id)
                    await consumer.ack(event)
    assert seen["one"] and seen["two"]
    assert sorted(seen["one"] + seen["two"]) == sorted(e.event_id for e in events)


async def test_new_durable_without_from_beginning_starts_at_new_events_and_keeps_its_place(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, make_sink: MakeSink
) -> None:
    subject, stream = names
    url = f"{nats_url}?subject={subject}&stream={stream}"
    sink = make_sink(url)
    _, old = make_execution_events(2)
    await asyncio.to_thread(write, sink, old)
    async with NatsStreamConsumer(url, durable="late") as consumer:
        assert await consumer.consume_one(timeout=0.3) is None
    _, new = make_execution_events(2)
    await asyncio.to_thread(write, sink, new)  # while no consumer is running
    async with NatsStreamConsumer(url, durable="late") as consumer:
        received = await read(consumer, len(new))
        for event in received:
            await consumer.ack(event)
    assert [e.event_id for e in received] == [e.event_id for e in new]


async def test_ephemeral_consumer_needs_no_acks(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, make_sink: MakeSink
) -> None:
    subject, stream = names
    url = f"{nats_url}?subject={subject}&stream={stream}"
    _, events = make_execution_events(3)
    await asyncio.to_thread(write, make_sink(url), events)
    async with NatsStreamConsumer(url, from_beginning=True, ack_wait=0.3) as consumer:
        received = await read(consumer, len(events))
        await consumer.ack(received[0])  # allowed, and a no-op
        assert await consumer.consume_one(timeout=0.8) is None  # nothing comes back unacknowledged
    assert [e.event_id for e in received] == [e.event_id for e in events]


async def test_durable_name_bound_to_another_subject_is_a_clear_error(
    nats_url: str, names: tuple[str, str], js: JetStreamContext
) -> None:
    subject, stream = names
    await js.add_stream(name=stream, subjects=[f"{subject}.>"])
    async with NatsStreamConsumer(f"{nats_url}?subject={subject}.a&stream={stream}", durable="d"):
        pass
    with pytest.raises(ConfigurationError, match="filters on"):
        await NatsStreamConsumer(f"{nats_url}?subject={subject}.b&stream={stream}", durable="d").start()


async def test_ephemeral_consumer_removed_by_the_server_is_recreated_where_it_stopped(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, make_sink: MakeSink
) -> None:
    subject, stream = names
    url = f"{nats_url}?subject={subject}&stream={stream}"
    sink = make_sink(url)
    _, first = make_execution_events(1)
    await asyncio.to_thread(write, sink, first)
    async with NatsStreamConsumer(url, from_beginning=True, inactive_threshold=0.5) as consumer:
        assert [e.event_id for e in await read(consumer, len(first))] == [e.event_id for e in first]
        assert await consumer_removed(js, stream)  # idle longer than inactive_threshold
        _, second = make_execution_events(2)
        await asyncio.to_thread(write, sink, second)
        received = await read(consumer, len(second))
        assert await consumer.consume_one(timeout=0.3) is None
    assert [e.event_id for e in received] == [e.event_id for e in second]


async def consumer_removed(js: JetStreamContext, stream: str, timeout: float = 15.0) -> bool:
    """Wait until the stream has no consumers left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if (await js.stream_info(stream)).state.consumer_count == 0:
            return True
        await asyncio.sleep(0.05)
    return False


def test_group_is_the_durable_name_as_on_the_other_transports() -> None:
    from streamll.errors import ConfigurationError
    from streamll_nats import NatsStreamConsumer

    assert NatsStreamConsumer("nats://127.0.0.1:4222", group="billing").durable == "billing"
    assert NatsStreamConsumer("nats://127.0.0.1:4222", group="billing", durable="billing").durable == "billing"
    with pytest.raises(ConfigurationError, match="disagree"):
        NatsStreamConsumer("nats://127.0.0.1:4222", group="a", durable="b")
