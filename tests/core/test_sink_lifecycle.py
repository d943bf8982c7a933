"""A sink's life around its edges: the default handler, a spill file that fails or outlives a stop, a fork reset."""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path

import pytest
from streamll.sinks.base import BaseSink
from streamll.sinks.spill import SpillFile
from streamll.sinks.worker import worker

from tests.core.support import FlakySink, GatedSink, event, indices
from tests.helpers import wait_until


class Bare(BaseSink):
    """A subclass that overrides neither ``handle_event`` nor ``write_batch``."""


def test_a_sink_that_overrides_nothing_fails_each_event_and_says_what_to_override(sinks: list[BaseSink]) -> None:
    sink = Bare(name="bare")
    sinks.append(sink)
    sink.enqueue(event(0))
    sink.enqueue(event(1))
    assert sink.flush(timeout=10)
    stats = sink.stats
    assert (stats.received, stats.delivered, stats.failed) == (2, 0, 2)
    reason = "Bare must override handle_event() or write_batch()"
    assert stats.last_error == f"handle_event raised NotImplementedError: {reason}"


def test_repr_names_the_class_the_sink_and_whether_it_runs(sinks: list[BaseSink]) -> None:
    sink = GatedSink(name="audit")
    assert repr(sink) == "<GatedSink 'audit' running=False>"
    sinks.append(sink)
    sink.start()
    assert repr(sink) == "<GatedSink 'audit' running=True>"


def test_an_event_the_spill_file_cannot_take_is_dropped_and_counted(
    sinks: list[BaseSink], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "spill.jsonl"
    sink = GatedSink(buffer_size=1, overflow="spill", spill_path=str(path))
    sinks.append(sink)
    sink.enqueue(event(0))
    wait_until(lambda: sink.started == 1, what="the first write")
    sink.enqueue(event(1))  # fills the buffer

    def disk_full(self: SpillFile, item: object) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(SpillFile, "append", disk_full)
    sink.enqueue(event(2))
    sink.enqueue(event(3))
    stats = sink.stats
    assert (stats.received, stats.spilled, stats.dropped) == (4, 0, 2)
    assert stats.last_error == f"spill file {path} not writable: No space left on device"
    monkeypatch.undo()
    sink.open_gate()
    assert sink.flush(timeout=10)
    assert indices(sink.written) == [0, 1]


@pytest.mark.parametrize("buffered", [0, 3])
def test_stopping_a_spill_sink_keeps_the_batch_awaiting_a_retry_in_the_file(
    sinks: list[BaseSink], tmp_path: Path, buffered: int
) -> None:
    path = tmp_path / "spill.jsonl"
    sink = FlakySink(batch_size=2, buffer_size=2, overflow="spill", spill_path=str(path))
    sink.enqueue(event(0))
    wait_until(lambda: sink.stats.write_errors >= 1, what="a failed write")
    for index in range(1, 1 + buffered):  # with 3, the last goes to the file at once: the buffer holds 2
        sink.enqueue(event(index))
    assert sink.stop(timeout=0.2) is False  # undelivered, but kept on disk
    stats = sink.stats
    assert (stats.delivered, stats.dropped, stats.spilled) == (0, 0, 1 + buffered)
    again = SpillFile(path)
    assert indices(again.read(10)) == list(range(1 + buffered))  # the retried batch, the buffer, the file
    again.close()


def test_a_sink_reset_in_a_forked_child_starts_afresh_with_a_spill_file_of_its_own(
    sinks: list[BaseSink], tmp_path: Path
) -> None:
    parent_file = tmp_path / "parent.jsonl"
    sink = GatedSink(name="forked", overflow="spill", spill_path=str(parent_file))
    sink.open_gate()
    for index in range(3):
        sink.enqueue(event(index))
    assert sink.flush(timeout=10) and sink.stop(timeout=5)
    assert sink.stats.delivered == 3
    sink._reset_after_fork()  # what the fork hook does in the child, for a fork of a fork as well
    sink._reset_after_fork()
    assert sink.stats.received == sink.stats.delivered == 0 and not sink.is_running
    sinks.append(sink)
    sink.start()
    spill = sink._spill
    assert spill is not None
    assert spill.path != parent_file and spill.path.parent == Path(tempfile.gettempdir()) / "streamll-spill"
    assert spill.path.name.startswith("forked-")


def test_an_event_emitted_on_the_worker_loop_never_waits_for_room(sinks: list[BaseSink]) -> None:
    sink = GatedSink(buffer_size=1, overflow="block", block_timeout=30)
    sinks.append(sink)
    sink.enqueue(event(0))
    wait_until(lambda: sink.started == 1, what="the first write")
    sink.enqueue(event(1))  # fills the buffer

    async def emit_on_the_worker() -> None:
        sink.enqueue(event(2))  # waiting here would stall the loop that makes room

    worker.submit(emit_on_the_worker()).result(5)
    assert sink.stats.dropped == 1
    sink.open_gate()
    assert sink.flush(timeout=10)
    assert indices(sink.written) == [0, 1]


def test_a_sink_never_started_has_nothing_to_flush_or_stop(sinks: list[BaseSink]) -> None:
    sink = GatedSink()
    assert sink.flush(timeout=0) is True and sink.stop(timeout=0) is True
    assert not sink.is_running and sink.stats.received == 0


def test_a_stopped_sink_keeps_saying_it_lost_events_and_starts_afresh_on_the_next_one(
    sinks: list[BaseSink],
) -> None:
    sink = FlakySink()
    sinks.append(sink)
    sink.enqueue(event(0))
    assert sink.stop(timeout=0.2) is False
    assert sink.stop(timeout=0.2) is False  # asked again: the events are still lost
    sink.up.set()
    sink.enqueue(event(1))  # starts it again
    assert sink.is_running
    assert sink.flush(timeout=10) and sink.stop(timeout=5) is True  # this run lost nothing
    assert indices(sink.written) == [1]
    stats = sink.stats
    assert (stats.received, stats.delivered, stats.dropped) == (2, 1, 1)


def test_flush_on_the_worker_loop_answers_at_once_instead_of_waiting_on_itself(sinks: list[BaseSink]) -> None:
    sink = GatedSink()
    sinks.append(sink)
    sink.enqueue(event(0))
    wait_until(lambda: sink.started == 1, what="the write to start")

    async def flush_here() -> bool:
        return sink.flush(timeout=5)

    assert worker.submit(flush_here()).result(2) is False  # the write is pending: not delivered yet
    sink.open_gate()
    assert sink.flush(timeout=10)
    assert worker.submit(flush_here()).result(2) is True


def test_flush_without_a_timeout_waits_until_everything_is_delivered(sinks: list[BaseSink]) -> None:
    sink = GatedSink()
    sinks.append(sink)
    for index in range(3):
        sink.enqueue(event(index))
    outcome: list[bool] = []
    flusher = threading.Thread(target=lambda: outcome.append(sink.flush()))
    flusher.start()
    wait_until(lambda: sink.started == 1, what="the first write")
    assert flusher.is_alive() and outcome == []
    sink.open_gate()
    flusher.join(10)
    assert outcome == [True] and indices(sink.written) == [0, 1, 2]


class Unreachable(FlakySink):
    """A destination that never accepts a connection."""

    async def open(self) -> None:
        raise ConnectionError("no route")


def test_a_spill_sink_that_never_connected_leaves_its_events_in_the_file_and_says_where(
    sinks: list[BaseSink], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spill.jsonl"
    sink = Unreachable(overflow="spill", spill_path=str(path), name="far")
    sink.enqueue(event(0))
    sink.enqueue(event(1))
    wait_until(lambda: sink.stats.write_errors >= 1, what="a failed connect")
    with caplog.at_level(logging.ERROR, logger="streamll"):
        assert sink.stop(timeout=5) is False
    assert sink.stats.dropped == 0
    assert [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR] == [
        f"streamll sink far: 2 event(s) remain in spill file {path}"
    ]
    again = SpillFile(path)
    assert indices(again.read(10)) == [0, 1]
    again.close()


def test_events_a_stopping_spill_sink_cannot_keep_on_disk_are_counted_as_dropped(
    sinks: list[BaseSink], tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = FlakySink(overflow="spill", spill_path=str(tmp_path / "spill.jsonl"), name="full-disk")
    sink.enqueue(event(0))
    wait_until(lambda: sink.stats.write_errors >= 1, what="a failed write")

    def disk_full(self: SpillFile, bodies: list[bytes]) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(SpillFile, "put_back_bodies", disk_full)
    with caplog.at_level(logging.ERROR, logger="streamll"):
        assert sink.stop(timeout=0.2) is False
    assert (sink.stats.spilled, sink.stats.dropped) == (0, 1)
    errors = [record.getMessage() for record in caplog.records if record.levelno == logging.ERROR]
    assert errors[-2:] == [  # (before them, maybe: the stop timeout cut the last retry short)
        "streamll sink full-disk: could not keep 1 event(s) in spill file: No space left on device",
        "streamll sink full-disk: stopped with 1 undelivered event(s) (counted as dropped)",
    ]
