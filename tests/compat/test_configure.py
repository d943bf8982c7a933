"""configure(): a context manager restoring the previous settings, event_filter, and 0.1's permanent=."""

from __future__ import annotations

import pytest
import streamll
from streamll.core.events import Event
from streamll.errors import ConfigurationError
from streamll.sinks.memory import MemorySink


def delivered(sink: MemorySink, count: int) -> list[Event]:
    assert streamll.flush(timeout=10)
    assert sink.wait_for(lambda events: len(events) >= count), sink.events
    return list(sink.events)


def test_with_configure_sends_to_the_block_sinks_and_restores_the_previous_ones_after() -> None:
    outer, inner = MemorySink(name="outer"), MemorySink(name="inner")
    streamll.configure(sinks=[outer])
    with streamll.configure(sinks=[inner]) as handle:
        assert isinstance(handle, streamll.Configuration)
        streamll.emit("inside")
    streamll.emit("after")
    assert [e.event_type for e in delivered(inner, 1)] == ["inside"]
    assert [e.event_type for e in delivered(outer, 1)] == ["after"]


def test_configure_restores_on_exception_and_the_exception_propagates() -> None:
    outer, inner = MemorySink(name="outer"), MemorySink(name="inner")
    streamll.configure(sinks=[outer])
    with pytest.raises(KeyError, match="boom"), streamll.configure(sinks=[inner], event_filter={"x"}):
        raise KeyError("boom")
    streamll.emit("after")
    assert [e.event_type for e in delivered(outer, 1)] == ["after"]


def test_configure_without_with_stays_in_force() -> None:
    sink = MemorySink(name="kept")
    streamll.configure(sinks=[sink])
    streamll.emit("one")
    streamll.emit("two")
    assert [e.event_type for e in delivered(sink, 2)] == ["one", "two"]


def test_an_argument_left_out_keeps_its_setting() -> None:
    sink = MemorySink(name="kept")
    streamll.configure(sinks=[sink])
    streamll.configure(event_filter={"wanted"})  # sinks not given: unchanged
    streamll.emit("unwanted")
    streamll.emit("wanted")
    assert [e.event_type for e in delivered(sink, 1)] == ["wanted"]


def test_empty_configure_block_is_a_no_op_as_in_0_1() -> None:
    sink = MemorySink(name="kept")
    streamll.configure(sinks=[sink])
    with streamll.configure():
        streamll.emit("inside")
    streamll.emit("after")
    assert [e.event_type for e in delivered(sink, 2)] == ["inside", "after"]


def test_event_filter_keeps_other_event_types_in_the_process_and_the_block_ends_it() -> None:
    sink = MemorySink(name="filtered")
    streamll.configure(sinks=[sink])
    before = streamll.core.policy.stats().filtered
    with streamll.configure(event_filter={"token", "end"}), streamll.trace("work") as span:
        span.emit("note")
    streamll.emit("note")
    events = delivered(sink, 2)
    assert [e.event_type for e in events] == ["end", "note"]
    assert streamll.core.policy.stats().filtered == before + 2  # the trace's start and its note


def test_bad_event_filter_and_redact_are_one_line_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="not a single string"):
        streamll.configure(event_filter="token")
    with pytest.raises(ConfigurationError, match="redact must be a function"):
        streamll.configure(redact="yes")


def test_permanent_warns_and_keeps_the_block_settings_after_it() -> None:
    outer, inner = MemorySink(name="outer"), MemorySink(name="inner")
    streamll.configure(sinks=[outer])
    with pytest.warns(DeprecationWarning, match="configure\\(\\) applies at once and stays"):
        handle = streamll.configure(sinks=[inner], permanent=True)
    with handle:
        streamll.emit("inside")
    streamll.emit("after")
    assert [e.event_type for e in delivered(inner, 2)] == ["inside", "after"]
    assert outer.events == []


def test_url_sinks_built_for_a_block_are_drained_and_stopped_when_it_ends() -> None:
    with streamll.configure(sinks=["memory://compat-block"]):
        streamll.emit("inside")
        (sink,) = streamll.config.active_sinks()
    assert not sink.is_running
    assert [e.event_type for e in MemorySink.named("compat-block").events] == ["inside"]
