"""A span's own events: its duration, a custom event emitted from another thread, and a cancelled run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import streamll
import streamll.core.spans
from streamll.core.events import Event
from streamll.core.runs import ExecutionCancelled, raise_if_cancelled
from streamll.sinks.memory import MemorySink


def delivered(sink: MemorySink, count: int) -> list[Event]:
    assert sink.flush(timeout=10)
    assert sink.wait_for(lambda events: len(events) >= count), sink.events
    return list(sink.events)


@pytest.fixture
def own_sink() -> Iterator[MemorySink]:
    sink = MemorySink(name="span-own")
    yield sink
    sink.stop()


def test_duration_ms_is_the_time_inside_the_span_in_milliseconds(
    monkeypatch: pytest.MonkeyPatch, own_sink: MemorySink
) -> None:
    clock = iter([100.0, 100.25])  # the span opens at 100 s and closes 250 ms later
    monkeypatch.setattr(streamll.core.spans, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    with streamll.trace("timed", sinks=[own_sink]):
        pass
    _start, end = delivered(own_sink, 2)
    assert end.data["duration_ms"] == 250.0


def test_an_event_emitted_from_another_thread_belongs_to_the_span(own_sink: MemorySink) -> None:
    """A plain thread does not inherit the caller's context; ``ctx.emit`` still ties its event to the span."""
    emitted: list[Event] = []
    with streamll.trace("fan-out", sinks=[own_sink]) as ctx:
        worker = threading.Thread(target=lambda: emitted.append(ctx.emit("from_thread", data={"n": 1})))
        worker.start()
        worker.join(10)
    start, from_thread, end = delivered(own_sink, 3)
    assert emitted == [from_thread]
    assert from_thread.event_type == "from_thread" and from_thread.data == {"n": 1}
    assert start.execution_id == from_thread.execution_id == end.execution_id
    assert from_thread.parent_id == start.event_id
    assert [start.sequence, from_thread.sequence, end.sequence] == [0, 1, 2]


def test_a_span_left_by_a_cancel_ends_marked_cancelled_not_as_an_error(own_sink: MemorySink) -> None:
    with streamll.execution(sinks=[own_sink]) as run:
        run.cancel()
        with pytest.raises(ExecutionCancelled), streamll.trace("step"):
            raise_if_cancelled()
        raise_if_cancelled()  # the run itself swallows it
    run_start, step_start, step_end, run_end = delivered(own_sink, 4)
    assert (run_start.event_type, step_start.event_type) == ("start", "start")
    assert step_end.event_type == "end" and step_end.module_name == "step"
    assert step_end.data["cancelled"] is True
    assert "error_type" not in step_end.data and "error_message" not in step_end.data
    assert run_end.event_type == "end" and run_end.data["cancelled"] is True


def test_a_trace_given_data_and_metadata_starts_with_both(own_sink: MemorySink) -> None:
    with streamll.trace("search", data={"query": "q", "source": "from-data"}, sinks=[own_sink], source="wiki", k=3):
        pass
    start, end = delivered(own_sink, 2)
    assert start.data == {"query": "q", "source": "from-data", "k": 3}  # the start data wins over the metadata
    assert end.data["k"] == 3 and end.data["source"] == "wiki"
    assert start.tags == end.tags == {"source": "wiki", "k": 3}
