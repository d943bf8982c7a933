"""NatsSink at the edges: max_payload to the byte, stream size limits, acks that never or cannot come, in-flight cap."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext
from streamll.core.emitter import make_event
from streamll.core.events import Event
from streamll.core.serialization import encode_event
from streamll.testing.contract import make_execution_events, write
from streamll_nats import NatsSink
from streamll_nats.sink import message_headers

from tests.helpers import BrokerProcess, wait_until
from tests.nats.conftest import MakeSink

pytestmark = pytest.mark.nats


async def server_max_payload(url: str) -> int:
    nc = await nats.connect(url)
    try:
        return int(nc.max_payload)
    finally:
        await nc.close()


def wire_size(event: Event, stream: str) -> int:
    """Bytes of the message on the wire: the body and the ``NATS/1.0`` header block (the protocol's layout)."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in message_headers(event, stream).items())
    return len(encode_event(event)) + len(f"NATS/1.0\r\n{lines}\r\n".encode())


def event_of_wire_size(size: int, stream: str) -> Event:
    """An event whose body plus headers take exactly ``size`` bytes on the wire."""
    blob = size // 2
    for _ in range(20):
        event, _ = make_event("custom", {"blob": "x" * blob})
        actual = wire_size(event, stream)
        if actual == size:
            return event
        blob += size - actual
    raise AssertionError(f"no event of exactly {size} bytes")


async def test_an_event_of_exactly_max_payload_is_stored_one_byte_more_is_not_sent(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, make_sink: MakeSink
) -> None:
    subject, stream = names
    limit = await server_max_payload(nats_url)
    sink = make_sink(f"{nats_url}?subject={subject}&stream={stream}")
    fits, over = event_of_wire_size(limit, stream), event_of_wire_size(limit + 1, stream)
    await asyncio.to_thread(write, sink, [fits, over])
    stats = sink.stats
    assert (stats.delivered, stats.failed, stats.retries) == (1, 1, 0)
    assert f"event {over.event_id} is {limit + 1} bytes, over the server's max_payload {limit}" in (
        stats.last_error or ""
    )
    stored = await js.get_msg(stream, 1)
    assert stored.headers and stored.headers["Nats-Msg-Id"] == fits.event_id


async def test_a_message_over_the_streams_size_limit_is_refused_once_and_not_retried(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, make_sink: MakeSink
) -> None:
    subject, stream = names
    await js.add_stream(name=stream, subjects=[subject], max_msg_size=4096)
    sink = make_sink(f"{nats_url}?subject={subject}&stream={stream}")
    _, events = make_execution_events(2)
    big, _ = make_event("custom", {"blob": "x" * 8000})
    await asyncio.to_thread(write, sink, [*events[:2], big, *events[2:]])
    stats = sink.stats
    assert (stats.delivered, stats.failed, stats.retries) == (len(events), 1, 0)
    assert "JetStream refused a message" in (stats.last_error or "")
    assert (await js.stream_info(stream)).state.messages == len(events)


async def test_a_small_in_flight_cap_still_delivers_everything_in_order(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, make_sink: MakeSink
) -> None:
    subject, stream = names
    sink = make_sink(f"{nats_url}?subject={subject}&stream={stream}&max_in_flight=3")
    _, events = make_execution_events(20)
    await asyncio.to_thread(write, sink, events)
    stored = [(await js.get_msg(stream, seq)).headers["Nats-Msg-Id"] for seq in range(1, len(events) + 1)]  # type: ignore[index]
    assert stored == [event.event_id for event in events]
    assert sink.stats.delivered == len(events) and sink.duplicates == 0


async def test_acks_that_never_come_fail_the_batch_after_ack_timeout(
    private_nats: BrokerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that stops answering: the batch is retried, and what it stored meanwhile is not stored twice."""
    url = f"nats://127.0.0.1:{private_nats.port}?subject=frozen.events&stream=FROZEN&ack_timeout=0.5"
    sink = NatsSink(url)
    try:
        await asyncio.to_thread(write, sink, make_execution_events(1)[1])
        assert private_nats.process is not None
        private_nats.process.send_signal(signal.SIGSTOP)
        try:
            _, events = make_execution_events(3)
            for event in events:
                sink.enqueue(event)
            caplog.set_level(logging.WARNING, logger="streamll")

            def timed_out() -> bool:
                return any("PublishError: no ack within 0.5s for " in r.getMessage() for r in caplog.records)

            assert await asyncio.to_thread(wait_until, timed_out, what="the ack timeout")
        finally:
            private_nats.process.send_signal(signal.SIGCONT)
        assert await asyncio.to_thread(sink.flush, 30), sink.stats
        assert sink.stats.delivered == 3 + len(events) and sink.stats.write_errors >= 1
    finally:
        await asyncio.to_thread(sink.stop, 5)
    nc = await nats.connect(f"nats://127.0.0.1:{private_nats.port}")
    try:
        assert (await nc.jetstream().stream_info("FROZEN")).state.messages == 3 + len(events)
    finally:
        await nc.close()


async def test_per_execution_publishes_under_the_execution_subject(
    nats_url: str, names: tuple[str, str], js: JetStreamContext, make_sink: MakeSink
) -> None:
    subject, stream = names
    url = f"{nats_url}?subject={subject}&stream={stream}&per_execution=true"
    sink = make_sink(url)
    assert sink.execution_log_url == url
    execution, events = make_execution_events(1)
    await asyncio.to_thread(write, sink, events)
    stored = [await js.get_msg(stream, seq) for seq in range(1, len(events) + 1)]
    assert {message.subject for message in stored} == {f"{subject}.{execution.execution_id}"}


def test_a_destination_given_as_keyword_has_no_execution_log_url() -> None:
    kwargs: dict[str, Any] = {"subject": "other.events"}
    sink = NatsSink("nats://127.0.0.1:4222?subject=a.b&stream=S&per_execution=true", **kwargs)
    assert (sink.subject, sink.stream, sink.execution_log_url) == ("other.events", "S", None)
    assert NatsSink("nats://127.0.0.1:4222?subject=a.b").execution_log_url is None


def test_repr_masks_credentials() -> None:
    sink = NatsSink("nats://alice:s3cret@127.0.0.1:4222?subject=a.b&stream=S")
    text = repr(sink)
    assert text.startswith("<NatsSink 'nats:S/a.b' ") and text.endswith(" running=False>")
    assert "s3cret" not in text and "127.0.0.1:4222" in text


async def test_a_connection_lost_with_acks_outstanding_fails_the_batch_at_once(
    private_nats: BrokerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """Acks that can no longer come are not waited for: the batch is retried without sitting out ack_timeout."""
    url = f"nats://127.0.0.1:{private_nats.port}?subject=lost.events&stream=LOST&ack_timeout=60"
    sink = NatsSink(url)
    caplog.set_level(logging.WARNING, logger="streamll")
    try:
        await asyncio.to_thread(write, sink, make_execution_events(1)[1])
        assert private_nats.process is not None
        private_nats.process.send_signal(signal.SIGSTOP)
        _, events = make_execution_events(3)
        for event in events:
            sink.enqueue(event)
        private_nats.process.kill()  # the publishes are on the wire, their acks will never come

        def failed_fast() -> bool:
            return any("(ConnectionError: connection to NATS lost)" in r.getMessage() for r in caplog.records)

        assert await asyncio.to_thread(wait_until, failed_fast, 15, what="the batch to fail on the lost connection")
        await asyncio.to_thread(private_nats.stop)
        await asyncio.to_thread(private_nats.start)
        assert await asyncio.to_thread(sink.flush, 30), sink.stats
        assert sink.stats.delivered == 3 + len(events)
    finally:
        await asyncio.to_thread(sink.stop, 5)


async def test_write_batch_publishes_and_waits_for_every_ack(
    nats_url: str, names: tuple[str, str], js: JetStreamContext
) -> None:
    subject, stream = names
    sink = NatsSink(f"{nats_url}?subject={subject}&stream={stream}")
    _, events = make_execution_events(1)
    await sink.open()
    try:
        result = await sink.write_batch([sink.encode(event) for event in events])
    finally:
        await sink.aclose()
    assert (result.delivered, result.rejected) == (len(events), ())
    assert (await js.stream_info(stream)).state.messages == len(events)
