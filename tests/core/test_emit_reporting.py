"""emit() and dispatch(): fields land on the event, and a sink problem is one log line, never an exception."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import streamll
from streamll.core.events import Event
from streamll.core.spans import Span
from streamll.sinks.memory import MemorySink


class Refusing(MemorySink):
    """A sink whose enqueue raises."""

    def enqueue(self, event: Event) -> None:
        raise RuntimeError("no room at the inn")

    def __repr__(self) -> str:
        return "<Refusing>"


def test_emit_sets_module_name_and_operation(memory_sink: MemorySink) -> None:
    event = streamll.emit("retrieval", {"documents": 3}, module_name="Retriever", operation="search")
    assert (event.module_name, event.operation, event.data) == ("Retriever", "search", {"documents": 3})
    assert streamll.flush(5)
    (stored,) = memory_sink.of_type("retrieval")
    assert (stored.module_name, stored.operation) == ("Retriever", "search")


@pytest.mark.parametrize("event_type", ["", None, 3])
def test_emit_rejects_a_missing_event_type_in_one_line(event_type: Any) -> None:
    with pytest.raises(TypeError, match=r"^event_type must be a non-empty string$"):
        streamll.emit(event_type)


@pytest.mark.parametrize(("data", "kind"), [(["a"], "list"), ("text", "str"), (3, "int")])
def test_emit_rejects_data_that_is_not_a_dict_naming_its_type(data: Any, kind: str) -> None:
    with pytest.raises(TypeError, match=rf"^event data must be a dict, not {kind}$"):
        streamll.emit("custom", data)


def test_a_refusing_sink_is_logged_and_the_others_still_get_the_event(caplog: pytest.LogCaptureFixture) -> None:
    memory = MemorySink(name="kept")
    with (
        streamll.configure(sinks=[Refusing(name="refusing"), memory]),
        caplog.at_level(logging.ERROR, logger="streamll"),
    ):
        event = streamll.emit("custom", {"n": 1})
        assert streamll.flush(5)
    assert [e.event_id for e in memory.events] == [event.event_id]
    assert "streamll: sink <Refusing> refused an event: no room at the inn" in caplog.messages


def test_a_failure_to_resolve_the_sinks_is_logged_with_the_event_type(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The last line of defence: whatever goes wrong finding the sinks, emit() logs it and returns."""
    import streamll.core.emitter

    def broken() -> tuple[Any, ...]:
        raise OSError("sink table unreadable")

    monkeypatch.setattr(streamll.core.emitter, "_default_sinks", broken)
    with caplog.at_level(logging.ERROR, logger="streamll"):
        event = streamll.emit("lost", {"n": 1})
    assert event.event_type == "lost"
    assert "streamll: cannot resolve sinks, event lost not delivered: sink table unreadable" in caplog.messages


def test_a_span_reports_its_method_name_and_duration(memory_sink: MemorySink) -> None:
    span = Span("module", "QA", method_name="forward")
    assert span.execution is None and span.span_id is None
    with span:
        time.sleep(0.02)
    assert streamll.flush(5)
    start, end = memory_sink.of_type("start")[0], memory_sink.of_type("end")[0]
    assert (start.method_name, end.method_name) == ("forward", "forward")
    assert 20 <= end.data["duration_ms"] < 2000


def test_events_without_sinks_of_their_own_go_where_the_installed_source_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """Core is told where events go (``streamll.config`` installs its source); the source is asked at each event."""
    import streamll.core.emitter

    monkeypatch.setattr(streamll.core.emitter, "_default_sinks", streamll.core.emitter._default_sinks)  # restored after
    first, second = MemorySink(name="first"), MemorySink(name="second")
    current = [first]
    try:
        streamll.core.emitter.use_default_sinks(lambda: current)
        one = streamll.emit("custom", {"n": 1})
        current = [second]
        two = streamll.emit("custom", {"n": 2})
        assert first.flush(5) and second.flush(5)
        assert [e.event_id for e in first.events] == [one.event_id]
        assert [e.event_id for e in second.events] == [two.event_id]
    finally:
        first.stop()
        second.stop()
