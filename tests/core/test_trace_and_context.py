"""Traces, executions and context ids: how events of one piece of work are tied together."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import streamll
from streamll.core.events import EndEvent, ErrorEvent, Event, StartEvent
from streamll.errors import ConfigurationError
from streamll.plugins import register_plugin
from streamll.sinks.memory import MemorySink

from tests.core.fake_plugins import GoodPlugin, SchemeSink


def delivered(sink: MemorySink, count: int) -> list[Event]:
    assert streamll.flush(timeout=10)
    assert sink.wait_for(lambda events: len(events) >= count), sink.events
    return list(sink.events)


@pytest.fixture(autouse=True)
def clean_context() -> Iterator[None]:
    """No context ids before or after each test (sync tests share the main thread's context)."""
    streamll.set_context(**dict.fromkeys(streamll.get_context()))
    yield
    streamll.set_context(**dict.fromkeys(streamll.get_context()))


def test_trace_emits_start_custom_and_end_of_one_execution(memory_sink: MemorySink) -> None:
    with streamll.trace("retrieve", data={"query": "q"}) as ctx:
        ctx.emit("retrieval_hit", data={"doc": "d1", "score": 0.9})
    start, hit, end = delivered(memory_sink, 3)

    assert (type(start), type(hit), type(end)) == (StartEvent, Event, EndEvent)
    assert (start.event_type, hit.event_type, end.event_type) == ("start", "retrieval_hit", "end")
    assert start.execution_id and start.execution_id == hit.execution_id == end.execution_id
    assert [start.sequence, hit.sequence, end.sequence] == [0, 1, 2]
    assert start.parent_id is None
    assert hit.parent_id == start.event_id
    assert end.parent_id is None and end.data["span_id"] == start.event_id
    assert start.data == {"query": "q"} and hit.data == {"doc": "d1", "score": 0.9}
    assert {start.module_name, hit.module_name, end.module_name} == {"retrieve"}
    assert {start.operation, hit.operation, end.operation} == {"trace"}
    assert isinstance(end.data["duration_ms"], float) and end.data["duration_ms"] >= 0
    assert timedelta(0) <= end.timestamp - start.timestamp
    assert end.data["duration_ms"] <= (end.timestamp - start.timestamp).total_seconds() * 1000 + 1


def test_nested_traces_and_plain_emits_inside_share_the_execution(memory_sink: MemorySink) -> None:
    with streamll.trace("outer") as outer:
        with streamll.trace("inner") as inner:
            streamll.emit("note", data={"where": "inner"})
        outer.emit("note", data={"where": "outer"})
    events = delivered(memory_sink, 6)

    outer_start, inner_start, inner_note, inner_end, outer_note, outer_end = events
    assert len({event.execution_id for event in events}) == 1
    assert [event.sequence for event in events] == list(range(6))
    assert inner_start.parent_id == outer_start.event_id == outer.span_id
    assert inner_note.parent_id == inner_start.event_id == inner.span_id
    assert inner_end.parent_id == outer_start.event_id
    assert outer_note.parent_id == outer_start.event_id
    assert outer_end.parent_id is None


def test_an_exception_emits_an_error_event_and_propagates_unchanged(memory_sink: MemorySink) -> None:
    raised = KeyError("missing")
    with pytest.raises(KeyError) as info, streamll.trace("lookup") as ctx:
        ctx.emit("step", data={"n": 1})
        raise raised
    assert info.value is raised
    start, _step, error = delivered(memory_sink, 3)
    assert isinstance(error, ErrorEvent)
    assert error.execution_id == start.execution_id and error.sequence == 2
    assert error.data["error_type"] == "KeyError"
    assert error.data["error_message"] == "'missing'"
    assert error.data["span_id"] == start.event_id and error.data["duration_ms"] >= 0
    assert not any(event.event_type == "end" for event in memory_sink.events)


async def test_async_with_trace(memory_sink: MemorySink) -> None:
    async with streamll.trace("fetch") as ctx:
        await asyncio.sleep(0)
        ctx.emit("got", data={"bytes": 10})
    with pytest.raises(RuntimeError, match="down"):
        async with streamll.trace("fetch-again"):
            raise RuntimeError("down")
    events = await asyncio.to_thread(delivered, memory_sink, 5)
    assert [event.event_type for event in events] == ["start", "got", "end", "start", "error"]
    assert events[0].execution_id == events[2].execution_id != events[3].execution_id


def test_emit_outside_a_trace_is_its_own_execution(memory_sink: MemorySink) -> None:
    first = streamll.emit("custom", data={"n": 1})
    second = streamll.emit("custom", data={"n": 2})
    assert first.execution_id and second.execution_id and first.execution_id != second.execution_id
    assert first.sequence == second.sequence == 0
    assert first.parent_id is None and second.parent_id is None
    assert delivered(memory_sink, 2) == [first, second]


def test_a_trace_can_send_to_its_own_sinks(memory_sink: MemorySink) -> None:
    own = MemorySink(name="trace-own")
    try:
        with streamll.trace("private", sinks=[own]):
            streamll.emit("inside")
        assert own.flush(timeout=10)
        assert [event.event_type for event in own.events] == ["start", "inside", "end"]
        assert streamll.flush(timeout=10)
        assert memory_sink.events == []
    finally:
        own.stop()


def test_a_trace_given_a_url_reuses_one_sink_for_it(installed_plugins: Callable[..., None]) -> None:
    register_plugin(GoodPlugin, name="good")
    built_before = len(SchemeSink.built)
    for index in range(3):
        with streamll.trace("by-url", sinks=["myscheme://trace-url"]) as ctx:
            ctx.emit("step", data={"i": index})
    assert len(SchemeSink.built) == built_before + 1  # not one sink (and connection) per call
    sink = SchemeSink.built[-1]
    assert sink.flush(timeout=10)
    assert [event.data["i"] for event in sink.of_type("step")] == [0, 1, 2]
    sink.stop()
    with pytest.raises(ConfigurationError, match="list"):
        streamll.trace("by-url", sinks="myscheme://trace-url")  # type: ignore[arg-type]


# ---------------------------------------------------------------------- context ids


def test_set_context_tags_every_later_event(memory_sink: MemorySink) -> None:
    streamll.emit("before")
    streamll.set_context(user_id="u-1", request_id="r-9")
    with streamll.trace("work") as ctx:
        ctx.emit("inside")
    streamll.set_context(request_id=None)
    streamll.emit("after")
    events = delivered(memory_sink, 5)

    assert events[0].tags == {}
    assert all(event.tags == {"user_id": "u-1", "request_id": "r-9"} for event in events[1:4])
    assert events[4].tags == {"user_id": "u-1"}
    assert streamll.get_context() == {"user_id": "u-1"}


def test_context_set_inside_a_trace_does_not_change_events_already_emitted(memory_sink: MemorySink) -> None:
    with streamll.trace("work"):
        streamll.set_context(user_id="late")
    start, end = delivered(memory_sink, 2)
    assert start.tags == {} and end.tags == {"user_id": "late"}


def test_threads_keep_their_own_context(memory_sink: MemorySink) -> None:
    streamll.set_context(user_id="main")
    both_set = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def work(user: str) -> None:
        try:
            assert streamll.get_context() == {}  # a new thread starts without the caller's ids
            streamll.set_context(user_id=user)
            both_set.wait()  # both threads have set their id before either emits
            with streamll.trace(f"work-{user}") as ctx:
                for index in range(20):
                    ctx.emit("step", data={"user": user, "i": index})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(user,)) for user in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors, errors
    events = delivered(memory_sink, 44)

    for user in ("alice", "bob"):
        mine = [event for event in events if event.module_name == f"work-{user}"]
        assert len(mine) == 22
        assert {event.tags["user_id"] for event in mine} == {user}
        assert len({event.execution_id for event in mine}) == 1
        assert [event.sequence for event in mine] == list(range(22))
    assert streamll.get_context() == {"user_id": "main"}


async def test_asyncio_tasks_keep_their_own_context(memory_sink: MemorySink) -> None:
    streamll.set_context(tenant="shared")
    both_set = asyncio.Barrier(2)

    async def work(user: str) -> None:
        streamll.set_context(user_id=user)
        await both_set.wait()
        async with streamll.trace(f"task-{user}") as ctx:
            for index in range(10):
                ctx.emit("step", data={"i": index})
                await asyncio.sleep(0)  # interleave with the other task

    await asyncio.gather(work("alice"), work("bob"))
    events = await asyncio.to_thread(delivered, memory_sink, 24)

    for user in ("alice", "bob"):
        mine = [event for event in events if event.module_name == f"task-{user}"]
        assert len(mine) == 12
        assert all(event.tags == {"tenant": "shared", "user_id": user} for event in mine)
        assert len({event.execution_id for event in mine}) == 1
        assert [event.sequence for event in mine] == list(range(12))
        assert all(event.parent_id == mine[0].event_id for event in mine[1:-1])
    assert streamll.get_context() == {"tenant": "shared"}  # the tasks' changes stayed in the tasks
