"""NatsSink: message headers, de-duplication, retried batches, oversized events, a server that is down."""

from __future__ import annotations

import asyncio

import pytest
from nats.js import JetStreamContext, api
from streamll.core.emitter import make_event
from streamll.core.serialization import encode_event
from streamll.sinks.worker import worker
from streamll.testing.contract import make_execution_events, write
from streamll_nats import NatsSink

from tests.helpers import free_port, wait_until
from tests.nats.conftest import MakeSink

pytestmark = pytest.mark.nats


async def test_messages_carry_msg_id_and_cloudevents_headers(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, make_sink: MakeSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STREAMLL_SOURCE", raising=False)
    subject, stream = names
    sink = make_sink(f"{nats_url}?subject={subject}&stream={stream}")
    _, events = make_execution_events(1)
    await asyncio.to_thread(write, sink, events)
    for seq, event in enumerate(events, start=1):
        raw = await js.get_msg(stream, seq)
        headers = raw.headers or {}
        assert raw.subject == subject
        assert raw.data == encode_event(event)
        assert headers["Nats-Msg-Id"] == event.event_id
        assert headers["ce-id"] == event.event_id
        assert headers["ce-type"] == f"dev.streamll.{event.event_type}"
        assert headers["ce-source"] == f"/streamll/{event.module_name or 'app'}"  # docs/wire-format.md
        assert headers["ce-time"] == event.timestamp.isoformat().replace("+00:00", "Z")
        assert headers["ce-specversion"] == "1.0"
        assert headers["ce-subject"] == event.execution_id
        assert headers["Content-Type"] == "application/json"
        assert headers["Nats-Expected-Stream"] == stream
    await asyncio.to_thread(sink.stop)


async def test_an_event_sent_twice_is_stored_once(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, make_sink: MakeSink
) -> None:
    subject, stream = names
    sink = make_sink(f"{nats_url}?subject={subject}&stream={stream}")
    event, _ = make_event("custom", {"n": 1})
    await asyncio.to_thread(write, sink, [event])
    await asyncio.to_thread(write, sink, [event])
    assert (await js.stream_info(stream)).state.messages == 1
    assert sink.stats.delivered == 2 and sink.duplicates == 1
    await asyncio.to_thread(sink.stop)


async def test_a_partly_refused_batch_is_retried_and_deduplicated(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, make_sink: MakeSink
) -> None:
    subject, stream = names
    await js.add_stream(name=stream, subjects=[subject], max_msgs=5, discard=api.DiscardPolicy.NEW)
    sink = make_sink(f"{nats_url}?subject={subject}&stream={stream}")
    _, events = make_execution_events(6)  # 8 events: the stream takes 5, refuses 3
    huge, _ = make_event("custom", {"blob": "x" * 2_000_000})  # can never be published

    async def enqueue_as_one_batch() -> None:
        # on the sinks' worker loop, so the sink takes nothing before all nine are queued: one batch
        for event in [*events[:4], huge, *events[4:]]:
            sink.enqueue(event)

    await asyncio.wrap_future(worker.submit(enqueue_as_one_batch()))
    assert await asyncio.to_thread(wait_until, lambda: sink.stats.retries >= 2)
    assert "publishes failed" in (sink.stats.last_error or "")
    assert (await js.stream_info(stream)).state.messages == 5
    await js.update_stream(name=stream, subjects=[subject], max_msgs=100, discard=api.DiscardPolicy.NEW)
    assert await asyncio.to_thread(sink.flush, 20)
    info = await js.stream_info(stream)
    assert info.state.messages == len(events)  # the 5 already stored were not stored again
    stats = sink.stats
    assert stats.delivered == len(events) and stats.dropped == 0 and stats.write_errors >= 2
    assert stats.failed == 1  # the oversized event, counted once however often the batch was retried
    assert sink.duplicates == 5
    stored = [(await js.get_msg(stream, seq)).headers["Nats-Msg-Id"] for seq in range(1, len(events) + 1)]
    assert stored == [e.event_id for e in events]
    await asyncio.to_thread(sink.stop)


async def test_an_event_over_max_payload_is_counted_as_failed_and_the_rest_delivered(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, make_sink: MakeSink
) -> None:
    subject, stream = names
    sink = make_sink(f"{nats_url}?subject={subject}&stream={stream}")
    small, _ = make_event("custom", {"n": 1})
    huge, _ = make_event("custom", {"blob": "x" * 2_000_000})
    after, _ = make_event("custom", {"n": 2})
    await asyncio.to_thread(write, sink, [small, huge, after])
    stats = sink.stats
    assert stats.failed == 1 and stats.delivered == 2 and stats.retries == 0
    assert "max_payload" in (stats.last_error or "")
    assert (await js.stream_info(stream)).state.messages == 2
    await asyncio.to_thread(sink.stop)


async def test_enqueue_never_waits_for_an_unreachable_server() -> None:
    sink = NatsSink(f"nats://127.0.0.1:{free_port()}?subject=nowhere.events&connect_timeout=0.2", buffer_size=50)
    _, events = make_execution_events(98)
    for event in events:
        sink.enqueue(event)  # returns at once: only a bounded in-memory buffer
    assert await asyncio.to_thread(wait_until, lambda: sink.stats.write_errors >= 2)
    stats = sink.stats
    assert stats.received == 100 and stats.delivered == 0
    assert stats.dropped == 50 and stats.queued == 50  # overflow policy drop_oldest, counted
    await asyncio.to_thread(sink.stop, 0.2)
    assert sink.stats.dropped == 100
