"""BaseConsumer: what every transport's consumer inherits, on an in-memory transport."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Callable

import pytest
from streamll.core.context import Execution
from streamll.core.emitter import make_event
from streamll.core.events import Event, TokenEvent
from streamll.errors import ConsumerError

from tests.core.fake_plugins import QueueConsumer


def body(event: Event) -> bytes:
    return event.to_json()


def token(execution: Execution, index: int) -> TokenEvent:
    event, _ = make_event("token", execution=execution, cls=TokenEvent, token=f"t{index}", token_index=index, field="a")
    assert isinstance(event, TokenEvent)
    return event


async def test_consume_one_before_start_raises() -> None:
    consumer = QueueConsumer([body(Event(event_type="x"))])
    with pytest.raises(ConsumerError, match="start"):
        await consumer.consume_one(timeout=0.1)
    await consumer.start()
    await consumer.stop()
    assert not consumer.connected
    with pytest.raises(ConsumerError):
        await consumer.consume_one(timeout=0.1)


async def test_consume_one_returns_none_after_the_timeout() -> None:
    async with QueueConsumer() as consumer:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await consumer.consume_one(timeout=0.2) is None
        assert loop.time() - started >= 0.2
        assert consumer.stats.consumed == 0


async def test_events_come_back_equal_and_in_order() -> None:
    execution = Execution()
    sent = [token(execution, index) for index in range(5)]
    async with QueueConsumer([body(event) for event in sent]) as consumer:
        received = [await consumer.consume_one(timeout=1) for _ in sent]
    assert received == sent
    assert all(isinstance(event, TokenEvent) for event in received)
    assert consumer.stats.consumed == 5


async def test_malformed_messages_are_counted_acked_and_skipped() -> None:
    good = [Event(event_type="x", data={"n": n}) for n in range(2)]
    bodies = [b"not json", body(good[0]), b"[1, 2]", b'{"event_type": "x", "schema_version": "2"}', body(good[1])]
    async with QueueConsumer(bodies) as consumer:
        first = await consumer.consume_one(timeout=1)
        second = await consumer.consume_one(timeout=1)
        assert await consumer.consume_one(timeout=0.05) is None
    assert [first, second] == good
    assert consumer.stats.malformed == 3
    assert consumer.acked == [0, 2, 3]  # the malformed ones; the good ones wait for ack()
    assert consumer.stats.acked == 3
    assert "schema_version" in (consumer.stats.last_error or "")


async def test_filters_by_event_type_and_execution_and_acks_what_they_skip() -> None:
    mine, other = Execution(), Execution()
    start, _ = make_event("start", execution=mine, module_name="QA")
    events = [start, token(other, 0), token(mine, 0), token(mine, 1), make_event("end", execution=mine)[0]]
    async with QueueConsumer(
        [body(event) for event in events], event_types="token", execution_id=mine.execution_id
    ) as consumer:
        received = [await consumer.consume_one(timeout=1), await consumer.consume_one(timeout=1)]
        assert await consumer.consume_one(timeout=0.05) is None
    assert [event.event_id for event in received if event] == [events[2].event_id, events[3].event_id]
    assert consumer.stats.filtered == 3
    assert consumer.acked == [0, 1, 4]


async def test_ack_acknowledges_the_events_message_once() -> None:
    events = [Event(event_type="x", data={"n": n}) for n in range(3)]
    async with QueueConsumer([body(event) for event in events]) as consumer:
        received = [await consumer.consume_one(timeout=1) for _ in events]
        assert consumer.acked == []
        await consumer.ack(received[1])
        assert consumer.acked == [1]
        with pytest.raises(ConsumerError, match="already acked"):
            await consumer.ack(received[1])
        with pytest.raises(ConsumerError, match="not delivered by this consumer"):
            await consumer.ack(Event(event_type="x"))
        await consumer.ack(received[0])
        assert consumer.acked == [1, 0] and consumer.stats.acked == 2


async def test_a_failed_ack_can_be_retried() -> None:
    event = Event(event_type="x")
    async with QueueConsumer([body(event)]) as consumer:
        received = await consumer.consume_one(timeout=1)
        assert received is not None
        consumer.fail_next_ack = True
        with pytest.raises(ConnectionError):
            await consumer.ack(received)
        await consumer.ack(received)
    assert consumer.acked == [0] and consumer.stats.acked == 1


async def test_a_consumer_that_never_acks_does_not_keep_every_handle() -> None:
    async with QueueConsumer([body(Event(event_type="x")) for _ in range(50)]) as consumer:
        for _ in range(50):
            assert await consumer.consume_one(timeout=1) is not None  # and dropped right away, never acked
        gc.collect()
        assert len(consumer.handed_out) == 50
        assert all(ref() is None for ref in consumer.handed_out)


async def test_a_kept_event_can_still_be_acked_after_others_were_dropped() -> None:
    async with QueueConsumer([body(Event(event_type="x", data={"n": n})) for n in range(3)]) as consumer:
        kept = await consumer.consume_one(timeout=1)
        for _ in range(2):
            await consumer.consume_one(timeout=1)
        gc.collect()
        assert kept is not None
        await consumer.ack(kept)
    assert consumer.acked == [0]


async def test_async_with_and_async_for() -> None:
    events = [Event(event_type="x", data={"n": n}) for n in range(4)]
    consumer = QueueConsumer([body(event) for event in events])
    seen: list[Event] = []
    async with consumer:
        assert consumer.is_started and consumer.connected
        async for event in consumer:
            seen.append(event)
            await consumer.ack(event)
            if len(seen) == len(events):
                break
    assert seen == events
    assert not consumer.is_started and not consumer.connected
    assert consumer.acked == [0, 1, 2, 3]


async def test_async_for_ends_when_the_consumer_is_stopped() -> None:
    consumer = QueueConsumer([body(Event(event_type="x"))])
    await consumer.start()
    seen: list[Event] = []

    async def read_all() -> None:
        async for event in consumer:
            seen.append(event)
            await consumer.stop()

    await asyncio.wait_for(read_all(), timeout=5)
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("name", "module", "extra"),
    [
        ("RedisStreamConsumer", "streamll_redis", "redis"),
        ("NatsStreamConsumer", "streamll_nats", "nats"),
        ("KafkaStreamConsumer", "streamll_kafka", "kafka"),
    ],
)
def test_plugin_consumer_names_say_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, installed_plugins: Callable[..., None], name: str, module: str, extra: str
) -> None:
    installed_plugins()  # no entry points: the name comes from the first-party catalogue
    monkeypatch.setitem(sys.modules, module, None)  # the plugin is not installed
    with pytest.raises(ImportError, match=rf"^{name} needs the {extra} plugin: pip install 'streamll\[{extra}\]'$"):
        exec(f"from streamll.consumer import {name}", {})


def test_unknown_names_are_attribute_errors() -> None:
    import streamll.consumer

    with pytest.raises(AttributeError):
        streamll.consumer.NoSuchConsumer  # noqa: B018


async def test_a_malformed_message_is_logged_with_its_reason_and_a_preview(caplog: pytest.LogCaptureFixture) -> None:
    long_garbage = b"x" * 200
    with caplog.at_level("WARNING", logger="streamll"):
        async with QueueConsumer([b"[1, 2]", long_garbage]) as consumer:
            assert await consumer.consume_one(timeout=0.3) is None
    assert caplog.messages[:2] == [
        "streamll consumer QueueConsumer: skipped a malformed message (expected a JSON object, got list): b'[1, 2]'",
        "streamll consumer QueueConsumer: skipped a malformed message (not JSON: Expecting value: line 1 column 1 "
        f"(char 0)): {long_garbage[:80]!r}",
    ]
    stats = consumer.stats.as_dict()
    assert stats["malformed"] == 2 and stats["consumed"] == 0
    assert stats["last_error"] == "not JSON: Expecting value: line 1 column 1 (char 0)"


def test_plugin_consumers_are_importable_from_streamll_consumer() -> None:
    import importlib.util

    import streamll.consumer

    if importlib.util.find_spec("streamll_redis") is None:
        with pytest.raises(ImportError, match=r"RedisStreamConsumer needs the redis plugin"):
            streamll.consumer.RedisStreamConsumer  # noqa: B018
    else:
        from streamll_redis import RedisStreamConsumer

        assert streamll.consumer.RedisStreamConsumer is RedisStreamConsumer
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchConsumer'"):
        streamll.consumer.NoSuchConsumer  # noqa: B018
