"""Adaptive batching, the byte budget, pipelined batches and the light token event."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Iterator
from typing import Any

import pytest
import streamll
from streamll.core.context import Execution
from streamll.core.emitter import make_event
from streamll.core.events import Event, TokenEvent
from streamll.core.serialization import decode_event, encode_event, event_to_dict
from streamll.sinks.base import BaseSink
from streamll.sinks.worker import worker

from tests.core.support import FlakySink, GatedSink, event, indices
from tests.helpers import wait_until


@pytest.fixture
def sinks() -> Iterator[list[BaseSink]]:
    """Sinks a test starts; each is let through and stopped afterwards."""
    started: list[BaseSink] = []
    yield started
    for sink in started:
        if isinstance(sink, GatedSink):
            sink.open_gate()
        if isinstance(sink, PipelinedSink):
            sink.acknowledge_all()
        if isinstance(sink, FlakySink):
            sink.up.set()
        sink.stop(timeout=5)


# ---------------------------------------------------------------------- adaptive batching


def test_an_idle_sink_writes_at_once_and_what_arrives_meanwhile_forms_the_next_batch(sinks: list[BaseSink]) -> None:
    sink = GatedSink()  # the defaults: no linger
    sinks.append(sink)
    sink.enqueue(event(0))
    wait_until(lambda: sink.started == 1, what="the first event to be written alone")
    for index in range(1, 51):
        sink.enqueue(event(index))
    sink.allow(1)
    wait_until(lambda: sink.started == 2, what="the second batch")
    sink.open_gate()
    assert sink.flush(timeout=10)
    assert [indices(batch) for batch in sink.batches] == [[0], list(range(1, 51))]


def test_batches_are_full_under_load(sinks: list[BaseSink]) -> None:
    sink = GatedSink(batch_size=20)
    sinks.append(sink)
    sink.enqueue(event(0))
    wait_until(lambda: sink.started == 1, what="the first write")
    for index in range(1, 101):
        sink.enqueue(event(index))
    sink.open_gate()
    assert sink.flush(timeout=10)
    assert [len(batch) for batch in sink.batches] == [1, 20, 20, 20, 20, 20]
    assert indices(sink.written) == list(range(101))


# ---------------------------------------------------------------------- the byte budget


def big(index: int, size: int) -> Event:
    return Event(event_type="custom", execution_id="exec", sequence=index, data={"i": index, "text": "x" * size})


def test_the_buffer_is_bounded_by_bytes_and_drops_the_oldest(sinks: list[BaseSink]) -> None:
    sink = GatedSink(buffer_bytes=100_000)
    sinks.append(sink)
    sink.enqueue(big(0, 10))
    wait_until(lambda: sink.started == 1, what="the writer to block")
    for index in range(1, 101):
        sink.enqueue(big(index, 10_000))  # about 1 MB in all: ten times the budget
        assert sink.stats.queued_bytes <= 100_000
    stats = sink.stats
    assert 5 <= stats.queued <= 11 and stats.dropped == stats.received - stats.queued  # queued: + the one in flight
    sink.open_gate()
    assert sink.flush(timeout=10)
    kept = indices(sink.written)
    assert kept[0] == 0 and kept[1:] == list(range(101 - len(kept) + 1, 101))  # the newest survive, in order
    assert sink.stats.queued_bytes == 0


def test_the_byte_budget_lets_small_events_pile_up_far_beyond_a_count(sinks: list[BaseSink]) -> None:
    sink = GatedSink()  # default budget: 64 MiB
    sinks.append(sink)
    sink.enqueue(event(0))
    wait_until(lambda: sink.started == 1, what="the writer to block")
    for index in range(1, 12_001):  # more than the old 10,000-event limit
        sink.enqueue(event(index))
    assert sink.stats.dropped == 0 and sink.stats.queued == 12_001
    sink.open_gate()
    assert sink.flush(timeout=30)
    assert indices(sink.written) == list(range(12_001))


def test_a_full_buffer_waits_for_a_healthy_destination_instead_of_dropping(sinks: list[BaseSink]) -> None:
    sink = GatedSink(buffer_bytes=20_000, block_timeout=30)  # the default policy: drop_oldest
    sinks.append(sink)
    sink.allow(1)
    sink.enqueue(big(0, 10))
    assert sink.flush(timeout=10)  # one write went through: the destination is healthy
    sink.enqueue(big(1, 10))
    wait_until(lambda: sink.started == 2, what="the writer to block")
    emitter = threading.Thread(target=lambda: [sink.enqueue(big(index, 5_000)) for index in range(2, 40)])
    emitter.start()
    wait_until(lambda: sink.stats.received >= 5, what="the buffer to fill")
    assert emitter.is_alive() and sink.stats.dropped == 0  # the burst waits for the destination
    sink.open_gate()
    emitter.join(30)
    assert sink.flush(timeout=30)
    assert indices(sink.written) == list(range(40)) and sink.stats.dropped == 0


def test_a_full_buffer_drops_the_oldest_at_once_while_the_destination_is_down(sinks: list[BaseSink]) -> None:
    sink = FlakySink(buffer_bytes=20_000, block_timeout=30)
    sinks.append(sink)
    started = time.monotonic()
    for index in range(40):
        sink.enqueue(big(index, 5_000))
    assert time.monotonic() - started < 5  # never waits on a destination that is down
    assert sink.stats.dropped > 0
    sink.up.set()
    assert sink.flush(timeout=10)


def test_block_policy_waits_for_bytes_to_free_up(sinks: list[BaseSink]) -> None:
    sink = GatedSink(buffer_bytes=20_000, overflow="block", block_timeout=30)
    sinks.append(sink)
    sink.enqueue(big(0, 10))
    wait_until(lambda: sink.started == 1, what="the writer to block")
    sink.open_gate()
    for index in range(1, 200):
        sink.enqueue(big(index, 5_000))
    assert sink.flush(timeout=30)
    assert indices(sink.written) == list(range(200)) and sink.stats.dropped == 0


# ---------------------------------------------------------------------- encoding once, failing alone


class EncodingSink(GatedSink):
    """Encodes to bytes on the worker and refuses events whose ``data`` says so."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.encoded = 0

    def encode(self, event: Event) -> bytes:
        self.encoded += 1
        if event.data.get("poison"):
            raise ValueError("cannot encode this one")
        return encode_event(event)


def test_an_event_that_cannot_be_encoded_fails_alone_and_batches_are_not_encoded_again(
    sinks: list[BaseSink],
) -> None:
    sink = EncodingSink()
    sinks.append(sink)
    events = [event(index) for index in range(10)]
    events[4] = Event(event_type="custom", execution_id="exec", sequence=4, data={"i": 4, "poison": True})
    sink.open_gate()
    for item in events:
        sink.enqueue(item)
    assert sink.flush(timeout=10)
    written = [decode_event(body).data["i"] for body in sink.written]  # type: ignore[arg-type]
    assert written == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert (sink.stats.failed, sink.stats.delivered, sink.encoded) == (1, 9, 10)


# ---------------------------------------------------------------------- pipelining


class PipelinedSink(BaseSink):
    """Sends batches at once and acknowledges them when the test says so (or fails them)."""

    pipeline_depth = 3
    retry_backoff = 0.01
    retry_backoff_max = 0.02

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.sent: list[list[int]] = []
        self.acks: list[asyncio.Future[int | None]] = []
        self.auto = False

    async def send_batch(self, records: list[Any]) -> Awaitable[int | None]:
        self.sent.append(indices(records))
        ack: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        if self.auto:
            ack.set_result(None)
        return ack

    def acknowledge_all(self) -> None:
        """From now on every batch is acknowledged at once, the pending ones included."""

        def release() -> None:
            self.auto = True
            for ack in self.acks:
                if not ack.done():
                    ack.set_result(None)

        worker.call_soon(release)

    def resolve_together(self, outcomes: dict[int, BaseException | None]) -> None:
        """Complete several batches in one step of the worker loop (``None``: acknowledged)."""

        def complete() -> None:
            for index, error in outcomes.items():
                if error is None:
                    self.acks[index].set_result(None)
                else:
                    self.acks[index].set_exception(error)

        worker.call_soon(complete)

    def resolve(self, index: int, error: BaseException | None = None) -> None:
        ack = self.acks[index]
        if error is None:
            worker.call_soon(ack.set_result, None)
        else:
            worker.call_soon(ack.set_exception, error)


def test_pipelined_batches_are_sent_before_earlier_ones_are_acknowledged(sinks: list[BaseSink]) -> None:
    sink = PipelinedSink(batch_size=2)
    sinks.append(sink)
    for index in range(10):
        sink.enqueue(event(index))
    wait_until(lambda: len(sink.sent) == 3, what="three batches in flight")
    flat = [index for batch in sink.sent for index in batch]
    assert flat == list(range(len(flat))) and sink.stats.delivered == 0  # in order, none acknowledged yet
    assert len(sink.sent) == 3  # and no fourth before an acknowledgement
    acknowledged = 0
    while sum(len(batch) for batch in sink.sent) < 10 or acknowledged < len(sink.sent):
        wait_until(lambda count=acknowledged: len(sink.sent) > count, what="the next batch")
        sink.resolve(acknowledged)
        acknowledged += 1
    assert sink.flush(timeout=10)
    assert [index for batch in sink.sent for index in batch] == list(range(10))
    assert sink.stats.delivered == 10 and sink.stats.batches == len(sink.sent)


def test_a_failed_batch_in_a_pipeline_sends_every_unfinished_batch_again_in_order(sinks: list[BaseSink]) -> None:
    sink = PipelinedSink(batch_size=2)
    sinks.append(sink)
    for index in range(6):
        sink.enqueue(event(index))
    wait_until(lambda: len(sink.sent) == 3, what="three batches in flight")
    first = sink.sent[0]
    unfinished = [index for batch in sink.sent[1:] for index in batch]
    sink.resolve_together({0: None, 1: ConnectionError("lost")})
    wait_until(lambda: sum(len(batch) for batch in sink.sent[3:]) >= len(unfinished), what="batches sent again")
    assert [index for batch in sink.sent[3:] for index in batch][: len(unfinished)] == unfinished, sink.sent
    sink.acknowledge_all()
    assert sink.flush(timeout=10)
    resent = [index for batch in sink.sent[3:] for index in batch]
    assert first + resent == list(range(6))
    stats = sink.stats
    assert (stats.delivered, stats.retries, stats.write_errors, stats.dropped) == (6, 1, 1, 0)


def test_a_batch_the_transport_cancels_is_reported_and_sent_again(sinks: list[BaseSink]) -> None:
    sink = PipelinedSink(batch_size=2)
    sinks.append(sink)
    for index in range(6):
        sink.enqueue(event(index))
    wait_until(lambda: len(sink.sent) == 3, what="three batches in flight")

    def cancel_second_then_acknowledge_first() -> None:
        sink.acks[1].cancel()
        sink.acks[0].set_result(None)

    worker.call_soon(cancel_second_then_acknowledge_first)
    wait_until(lambda: sink.stats.retries == 1, what="the retry")
    sink.acknowledge_all()
    assert sink.flush(timeout=10)
    assert sink.sent[0] + [index for batch in sink.sent[3:] for index in batch] == list(range(6))  # all after the first
    stats = sink.stats
    assert (stats.delivered, stats.write_errors, stats.dropped) == (6, 1, 0)
    assert stats.last_error == "write: CancelledError: batch cancelled"


class WindingDownSink(PipelinedSink):
    """Acknowledges through a coroutine that notes when it is cancelled; notes its opens and closes too."""

    pipeline_depth = 2

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.log: list[str] = []

    async def open(self) -> None:
        self.log.append("open")

    async def aclose(self) -> None:
        self.log.append("close")

    async def send_batch(self, records: list[Any]) -> Awaitable[int | None]:
        ack = await super().send_batch(records)
        return self._wait_for(ack, indices(records))

    async def _wait_for(self, ack: Awaitable[int | None], batch: list[int]) -> int | None:
        try:
            return await ack
        except asyncio.CancelledError:
            self.log.append(f"cancelled {batch}")
            raise


def test_after_a_failed_batch_the_acks_still_pending_are_wound_down_before_reconnecting(
    sinks: list[BaseSink],
) -> None:
    sink = WindingDownSink()
    sinks.append(sink)
    sink.enqueue(event(0))
    wait_until(lambda: len(sink.sent) == 1, what="the first batch")
    sink.enqueue(event(1))
    wait_until(lambda: len(sink.sent) == 2, what="the second batch, sent before the first is acknowledged")
    sink.resolve(0, ConnectionError("lost"))
    wait_until(lambda: sink.stats.retries == 1, what="the retry")
    sink.acknowledge_all()
    assert sink.flush(timeout=10)
    assert sink.log == ["open", "cancelled [1]", "close", "open"]
    assert [index for batch in sink.sent[2:] for index in batch] == [0, 1]
    assert (sink.stats.delivered, sink.stats.reconnects) == (2, 1)


# ---------------------------------------------------------------------- the light token event


def test_a_token_event_built_on_the_hot_path_equals_a_validated_one() -> None:
    execution = Execution()
    fast, _ = make_event(
        "token",
        {"predictor": "qa"},
        execution=execution,
        cls=TokenEvent,
        token=" hi",
        token_index=2,
        field="answer",
        finish_reason="stop",
        module_name="QA",
        operation="token",
    )
    assert isinstance(fast, TokenEvent)
    assert (fast.token, fast.token_index, fast.field, fast.finish_reason) == (" hi", 2, "answer", "stop")
    token_data = {"token": " hi", "token_index": 2, "field": "answer", "finish_reason": "stop"}
    assert fast.data == {"predictor": "qa", **token_data}
    slow = TokenEvent.model_validate(event_to_dict(fast))
    assert slow == fast and event_to_dict(slow) == event_to_dict(fast)
    assert decode_event(encode_event(fast)) == fast
    assert fast.model_copy(update={"token": "x"}).token == "x"


@pytest.mark.parametrize(
    "fields",
    [
        {"token": 5},  # wrong type: validated (and coerced or refused) as before
        {"token_index": "3"},
    ],
)
def test_values_of_another_type_are_validated_as_before(fields: dict[str, Any]) -> None:
    made: Any
    try:
        made, _ = make_event("token", cls=TokenEvent, **{"token": "a", "token_index": 0, "field": "f", **fields})
    except Exception as exc:
        made = type(exc)
    try:
        expected: Any = TokenEvent(**{"token": "a", "token_index": 0, "field": "f", **fields})
    except Exception as exc:
        expected = type(exc)
    if isinstance(expected, type):
        assert made is expected
    else:
        assert (made.token, made.token_index) == (expected.token, expected.token_index)


def test_emit_keeps_non_string_keys_readable(memory_sink: streamll.MemorySink) -> None:
    emitted = streamll.emit("custom", data={1: "one", None: "none"})
    assert emitted.data == {"1": "one", "null": "none"}
