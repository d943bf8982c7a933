"""0.1's duck-typed sinks (start / stop / handle_event / is_running, sync or async) are buffered and isolated."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import dspy
import pytest
import streamll
from streamll.core.events import Event
from streamll.sinks.adapter import SinkAdapter
from streamll.testing import OfflineLMServer

from tests.helpers import wait_until


class SyncSink:
    """The shape of 0.1's TerminalSink and of 0.1 tests' capturing sinks."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.is_running = False
        self.starts = self.stops = 0
        self.threads: set[str] = set()

    def start(self) -> None:
        self.starts += 1
        self.is_running = True

    def stop(self) -> None:
        self.stops += 1
        self.is_running = False

    def handle_event(self, event: Event) -> None:
        self.threads.add(threading.current_thread().name)
        self.events.append(event)


class AsyncSink:
    """The shape of 0.1's RedisSink: async start / stop / handle_event."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.is_running = False

    async def start(self) -> None:
        await asyncio.sleep(0)
        self.is_running = True

    async def stop(self) -> None:
        self.is_running = False

    async def handle_event(self, event: Event) -> None:
        await asyncio.sleep(0)
        self.events.append(event)


def wait(predicate: Any, what: str, timeout: float = 10.0) -> None:
    wait_until(predicate, timeout, what=what)


def test_a_sync_duck_sink_in_a_configure_block_is_started_fed_off_thread_and_stopped_at_the_end() -> None:
    sink = SyncSink()
    with streamll.configure(sinks=[sink]), streamll.trace("op") as ctx:
        ctx.emit("step", data={"value": 10})
    assert [e.event_type for e in sink.events] == ["start", "step", "end"]  # drained when the block ended
    assert (sink.starts, sink.stops, sink.is_running) == (1, 1, False)
    assert threading.current_thread().name not in sink.threads  # the program never ran handle_event itself


def test_an_async_duck_sink_is_awaited_on_the_worker_loop() -> None:
    sink = AsyncSink()
    streamll.configure(sinks=[sink])
    for index in range(5):
        streamll.emit("step", data={"i": index})
    assert streamll.flush(timeout=10)
    wait(lambda: len(sink.events) == 5, "5 events")
    assert [e.data["i"] for e in sink.events] == list(range(5)) and sink.is_running


def test_a_duck_sink_that_raises_is_isolated_and_counted() -> None:
    class Flaky(SyncSink):
        def handle_event(self, event: Event) -> None:
            if event.data.get("i") == 1:
                raise RuntimeError("sink bug")
            super().handle_event(event)

    sink = Flaky()
    streamll.configure(sinks=[sink])
    for index in range(3):
        streamll.emit("step", data={"i": index})  # never raises into the program
    assert streamll.flush(timeout=10)
    assert [e.data["i"] for e in sink.events] == [0, 2]
    (adapter,) = streamll.config.active_sinks()
    assert isinstance(adapter, SinkAdapter) and adapter.target is sink
    assert adapter.stats.failed == 1 and "sink bug" in (adapter.stats.last_error or "")


def test_a_slow_duck_sink_does_not_slow_the_program() -> None:
    release = threading.Event()

    class Slow(SyncSink):
        def handle_event(self, event: Event) -> None:
            release.wait(10)
            super().handle_event(event)

    sink = Slow()
    streamll.configure(sinks=[sink])
    started = time.perf_counter()
    for index in range(200):
        streamll.emit("step", data={"i": index})
    elapsed = time.perf_counter() - started
    release.set()
    assert streamll.flush(timeout=20)
    assert len(sink.events) == 200
    assert elapsed < 5.0, f"emitting 200 events took {elapsed:.2f}s while the sink was blocked"


def test_a_duck_sink_given_to_instrument_gets_the_tokens(lm_server: OfflineLMServer) -> None:
    lm_server.reset()
    sink = SyncSink()

    @streamll.instrument(stream_fields=["answer"], sinks=[sink])
    class QA(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("question -> answer")

        def forward(self, question: str) -> dspy.Prediction:
            return self.predict(question=question)

    with dspy.context(lm=lm_server.lm(), adapter=dspy.ChatAdapter()):
        result = QA()(question="What is machine learning?")
    assert streamll.flush(timeout=10)
    wait(lambda: any(e.event_type == "end" and e.operation == "module" for e in sink.events), "the end event")
    assert "".join(e.data["token"] for e in sink.events if e.event_type == "token") == result.answer


def test_an_object_without_handle_event_is_refused_with_what_a_sink_is() -> None:
    with pytest.raises(streamll.ConfigurationError, match="an object with handle_event"):
        streamll.configure(sinks=[object()])


def test_a_duck_sink_reads_context_ids_and_seconds_in_data_as_0_1_sinks_did() -> None:
    from streamll.sinks.memory import MemorySink

    duck, memory = SyncSink(), MemorySink(name="beside-a-duck")
    streamll.configure(sinks=[duck, memory])
    streamll.set_context(conversation_id="conv_123")
    with streamll.trace("op"):
        streamll.emit("step", data={"conversation_id": "from data wins"})
    assert streamll.flush(timeout=10)
    wait(lambda: len(duck.events) == 3 and len(memory.events) == 3, "3 events at both sinks")
    start, step, end = duck.events
    assert start.data["conversation_id"] == "conv_123" and step.data["conversation_id"] == "from data wins"
    assert end.data["duration"] == end.data["duration_ms"] / 1000
    assert "conversation_id" not in memory.events[0].data and "duration" not in memory.events[2].data  # only a copy
