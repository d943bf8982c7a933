"""BaseSink: the documented subclassing API, batching, failures, overflow policies and draining."""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamll
from streamll.core.emitter import dispatch, make_event
from streamll.core.events import Event, TokenEvent
from streamll.errors import ConfigurationError
from streamll.sinks.base import BaseSink, Overflow
from streamll.sinks.terminal import TerminalSink

from tests.core.support import FlakySink, GatedSink, event, indices
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sinks() -> Iterator[list[BaseSink]]:
    """Sinks a test starts; each is stopped afterwards and the configuration reset."""
    started: list[BaseSink] = []
    yield started
    streamll.configure(sinks=None)
    for sink in started:
        if isinstance(sink, GatedSink):
            sink.open_gate()
        if isinstance(sink, FlakySink):
            sink.up.set()
        sink.stop(timeout=5)


# ---------------------------------------------------------------------- the documented custom sink


DOCS_EXAMPLE = '''\
from streamll.sinks.base import BaseSink
from streamll.core.events import TokenEvent

class TokenCollector(BaseSink):
    def __init__(self):
        super().__init__()
        self.tokens = []

    def handle_event(self, event):
        if isinstance(event, TokenEvent):
            self.tokens.append(event)
            print(f"Token #{event.token_index}: {event.token}")

    def get_text(self, field=None):
        """Reconstruct text from tokens."""
        if field:
            tokens = [e.token for e in self.tokens if e.data.get('field') == field]
        else:
            tokens = [e.token for e in self.tokens]
        return ''.join(tokens)
'''
"""The "In Custom Sinks" example of spec/token-streaming.md, verbatim."""


def test_documented_custom_sink_works_as_written(capsys: pytest.CaptureFixture[str], sinks: list[BaseSink]) -> None:
    namespace: dict[str, Any] = {}
    exec(DOCS_EXAMPLE, namespace)
    collector = namespace["TokenCollector"]()
    sinks.append(collector)
    streamll.configure(sinks=[collector])
    with streamll.trace("qa") as span:
        for index, word in enumerate(["Machine", " learning", " is", " fun"]):
            streamll.emit("token", data={"token": word, "token_index": index, "field": "answer"})
        span.emit("retrieval_hit", data={"doc": "d1"})
        reasoning, execution = make_event(
            "token", cls=TokenEvent, token="Because", token_index=0, field="reasoning", finish_reason="stop"
        )
        dispatch(reasoning, execution)
    assert streamll.flush(timeout=10)

    assert collector.get_text(field="answer") == "Machine learning is fun"
    assert collector.get_text(field="reasoning") == "Because"
    assert collector.get_text() == "Machine learning is funBecause"
    assert [token.token_index for token in collector.tokens] == [0, 1, 2, 3, 0]
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        "Token #0: Machine",
        "Token #1:  learning",
        "Token #2:  is",
        "Token #3:  fun",
        "Token #0: Because",
    ]
    assert collector.stats.delivered == 8  # the trace's start and end, 5 tokens and the custom event
    assert collector.stats.failed == 0


# ---------------------------------------------------------------------- batching and the hot path


def test_batches_respect_batch_size_and_keep_order(sinks: list[BaseSink]) -> None:
    sink = GatedSink(batch_size=7, linger=0.0)
    sinks.append(sink)
    sink.enqueue(event(0))
    wait_until(lambda: sink.started == 1, what="the first batch to reach the destination")
    for index in range(1, 100):
        sink.enqueue(event(index))
    sink.open_gate()
    assert sink.flush(timeout=10)
    assert indices(sink.written) == list(range(100))
    assert all(1 <= len(batch) <= 7 for batch in sink.batches)
    assert max(len(batch) for batch in sink.batches) == 7  # what waited behind the gate went out in full batches
    assert sink.stats.batches == len(sink.batches)
    assert sink.stats.delivered == sink.stats.received == 100


def test_emit_does_not_wait_for_a_blocked_destination(sinks: list[BaseSink]) -> None:
    sink = GatedSink(buffer_size=5000)
    sinks.append(sink)
    streamll.configure(sinks=[sink])
    streamll.emit("custom", data={"i": 0})
    wait_until(lambda: sink.started == 1, what="the writer to block")

    for index in range(1, 1001):
        streamll.emit("custom", data={"i": index})

    # every emit returned while the destination still held the very first batch
    assert sink.started == 1 and sink.batches == []
    stats = sink.stats
    assert stats.received == 1001 and stats.queued == 1001 and stats.delivered == 0
    sink.open_gate()
    assert streamll.flush(timeout=10)
    assert indices(sink.written) == list(range(1001))


def test_flush_returns_false_while_the_destination_is_down_and_true_after(sinks: list[BaseSink]) -> None:
    sink = FlakySink()
    sinks.append(sink)
    for index in range(10):
        sink.enqueue(event(index))
    assert sink.flush(timeout=0.2) is False
    wait_until(lambda: sink.stats.write_errors >= 2, what="retries")
    assert sink.stats.delivered == 0 and sink.stats.queued == 10

    sink.up.set()
    assert sink.flush(timeout=10) is True
    assert indices(sink.written) == list(range(10))


def test_streamll_flush_reports_a_down_destination(sinks: list[BaseSink]) -> None:
    sink = FlakySink()
    sinks.append(sink)
    streamll.configure(sinks=[sink])
    streamll.emit("custom", data={"i": 0})
    assert streamll.flush(timeout=0.2) is False
    sink.up.set()
    assert streamll.flush(timeout=10) is True


# ---------------------------------------------------------------------- failures


class Fragile(BaseSink):
    """``handle_event`` raises on events marked ``boom``."""

    def __init__(self) -> None:
        super().__init__(name="fragile")
        self.handled: list[int] = []

    def handle_event(self, event: Event) -> None:
        if event.data.get("boom"):
            raise RuntimeError(f"cannot handle {event.data['i']}")
        self.handled.append(event.data["i"])


def test_a_raising_handle_event_never_reaches_the_program(sinks: list[BaseSink]) -> None:
    sink = Fragile()
    sinks.append(sink)
    streamll.configure(sinks=[sink])
    returned = [streamll.emit("custom", data={"i": index, "boom": index % 3 == 0}) for index in range(9)]
    assert all(isinstance(item, Event) for item in returned)
    assert streamll.flush(timeout=10)

    assert sink.handled == [1, 2, 4, 5, 7, 8]
    stats = sink.stats
    assert stats.failed == 3 and stats.delivered == 6 and stats.received == 9
    assert "cannot handle" in (stats.last_error or "")
    assert stats.retries == 0  # the sink's own error is not retried


def test_a_failing_write_is_retried_in_order_after_reconnecting(sinks: list[BaseSink]) -> None:
    sink = FlakySink(failures=3, batch_size=4)
    sinks.append(sink)
    for index in range(10):
        sink.enqueue(event(index))
    assert sink.flush(timeout=10)

    assert indices(sink.written) == list(range(10))
    stats = sink.stats
    assert stats.write_errors == 3
    assert stats.retries == 3
    assert stats.reconnects == 3
    assert stats.delivered == 10 and stats.dropped == 0
    assert "destination down" in (stats.last_error or "")
    assert sink.opens == 4  # opened, then re-opened after each failure
    assert sink.closes == 3


def test_a_failing_open_is_retried_and_counted(sinks: list[BaseSink]) -> None:
    class Unreachable(FlakySink):
        async def open(self) -> None:
            self.opens += 1
            if self.opens <= 2:
                raise OSError("connection refused")

    sink = Unreachable(failures=0)
    sinks.append(sink)
    sink.enqueue(event(0))
    assert sink.flush(timeout=10)
    assert sink.opens == 3
    assert sink.stats.write_errors == 2 and sink.stats.reconnects == 1
    assert indices(sink.written) == [0]


class Rejecting(BaseSink):
    """Delivers every event except those marked ``reject``, and reports how many it delivered."""

    def __init__(self, *, counts_itself: bool) -> None:
        super().__init__()
        self.counts_itself = counts_itself
        self.written: list[Event] = []

    async def write_batch(self, events: list[Event]) -> int | None:
        kept = [item for item in events if not item.data.get("reject")]
        self.written.extend(kept)
        if self.counts_itself:  # what the first-party plugins do for events the broker refuses for good
            with self._lock:
                self._stats.failed += len(events) - len(kept)
        return len(kept)


@pytest.mark.parametrize("counts_itself", [False, True])
def test_events_a_write_reports_undelivered_are_counted_once(sinks: list[BaseSink], counts_itself: bool) -> None:
    sink = Rejecting(counts_itself=counts_itself)
    sinks.append(sink)
    for index in range(10):
        sink.enqueue(Event(event_type="custom", data={"i": index, "reject": index in (2, 7)}))
    assert sink.flush(timeout=10)
    stats = sink.stats
    assert (stats.received, stats.delivered, stats.failed, stats.dropped) == (10, 8, 2, 0)
    assert indices(sink.written) == [0, 1, 3, 4, 5, 6, 8, 9]


# ---------------------------------------------------------------------- overflow


def _fill_behind_gate(sink: GatedSink, count: int) -> None:
    """Event 0 is held by the destination; then ``count`` more are handed to the sink."""
    sink.enqueue(event(0))
    wait_until(lambda: sink.started == 1, what="the first batch to reach the destination")
    for index in range(1, count + 1):
        sink.enqueue(event(index))


def test_drop_oldest_keeps_the_newest_events(sinks: list[BaseSink]) -> None:
    sink = GatedSink(buffer_size=5, overflow="drop_oldest")
    sinks.append(sink)
    _fill_behind_gate(sink, 10)
    assert sink.stats.dropped == 5
    sink.open_gate()
    assert sink.flush(timeout=10)
    assert indices(sink.written) == [0, 6, 7, 8, 9, 10]
    stats = sink.stats
    assert (stats.received, stats.delivered, stats.dropped) == (11, 6, 5)
    assert "dropped the oldest" in (stats.last_error or "")


def test_drop_newest_keeps_the_oldest_events(sinks: list[BaseSink]) -> None:
    sink = GatedSink(buffer_size=5, overflow=Overflow.DROP_NEWEST)
    sinks.append(sink)
    _fill_behind_gate(sink, 10)
    sink.open_gate()
    assert sink.flush(timeout=10)
    assert indices(sink.written) == [0, 1, 2, 3, 4, 5]
    assert (sink.stats.received, sink.stats.delivered, sink.stats.dropped) == (11, 6, 5)


def test_block_waits_block_timeout_then_drops_and_counts(sinks: list[BaseSink]) -> None:
    sink = GatedSink(buffer_size=2, overflow="block", block_timeout=0.3)
    sinks.append(sink)
    _fill_behind_gate(sink, 2)
    started = time.monotonic()
    sink.enqueue(event(3))
    waited = time.monotonic() - started
    assert waited >= 0.3
    assert sink.stats.dropped == 1
    sink.open_gate()
    assert sink.flush(timeout=10)
    assert indices(sink.written) == [0, 1, 2]


def test_block_resumes_as_soon_as_there_is_room(sinks: list[BaseSink]) -> None:
    sink = GatedSink(buffer_size=2, overflow="block", block_timeout=30)
    sinks.append(sink)
    _fill_behind_gate(sink, 2)
    blocked = threading.Thread(target=sink.enqueue, args=(event(3),))
    blocked.start()
    wait_until(lambda: sink.stats.received == 4, what="the fourth enqueue to start waiting")
    assert blocked.is_alive()  # the buffer is full: it waits
    assert sink.batches == []
    sink.open_gate()
    blocked.join(10)
    assert not blocked.is_alive()
    assert sink.flush(timeout=10)
    assert indices(sink.written) == [0, 1, 2, 3]
    assert sink.stats.dropped == 0


def test_spill_keeps_every_event_in_order_and_replays_after_recovery(sinks: list[BaseSink], tmp_path: Path) -> None:
    spill_path = tmp_path / "spill.jsonl"
    sink = GatedSink(buffer_size=3, batch_size=3, linger=0.0, overflow="spill", spill_path=str(spill_path))
    sinks.append(sink)
    _fill_behind_gate(sink, 10)  # 0 at the destination, 1-3 in memory, 4-10 in the file
    stats = sink.stats
    assert stats.spilled == 7 and stats.dropped == 0
    assert [json.loads(line)["data"]["i"] for line in spill_path.read_text().splitlines()] == [4, 5, 6, 7, 8, 9, 10]

    sink.allow(1)  # the destination takes event 0; the worker picks up 1-3 and the memory buffer has room
    wait_until(lambda: sink.started == 2, what="events 1-3 to be in flight")
    sink.enqueue(event(11))  # older events wait in the file, so this one goes there too
    assert sink.stats.spilled == 8

    sink.open_gate()
    assert sink.flush(timeout=10)
    assert indices(sink.written) == list(range(12))
    stats = sink.stats
    assert (stats.received, stats.delivered, stats.spilled, stats.replayed, stats.dropped) == (12, 12, 8, 8, 0)
    assert all(len(batch) <= 3 for batch in sink.batches)
    assert spill_path.read_text() == ""


def test_spill_left_by_an_earlier_run_is_replayed_first(sinks: list[BaseSink], tmp_path: Path) -> None:
    spill_path = tmp_path / "spill.jsonl"
    earlier = [event(index) for index in range(3)]
    spill_path.write_bytes(b"".join(item.to_json() + b"\n" for item in earlier))
    sink = FlakySink(overflow="spill", spill_path=str(spill_path))
    sinks.append(sink)
    sink.up.set()
    sink.enqueue(event(3))
    assert sink.flush(timeout=10)
    assert indices(sink.written) == [0, 1, 2, 3]
    stats = sink.stats
    assert stats.replayed == 3 + stats.spilled  # event 3 went to the file only if the old ones were still there
    assert (stats.delivered, stats.dropped) == (4, 0)


def test_a_line_cut_short_in_an_old_spill_file_is_skipped(sinks: list[BaseSink], tmp_path: Path) -> None:
    spill_path = tmp_path / "spill.jsonl"
    spill_path.write_bytes(event(0).to_json() + b"\n" + event(1).to_json()[:20])
    sink = FlakySink(overflow="spill", spill_path=str(spill_path))
    sinks.append(sink)
    sink.up.set()
    sink.enqueue(event(2))
    assert sink.flush(timeout=10)
    assert indices(sink.written) == [0, 2]


# ---------------------------------------------------------------------- stopping


def test_stop_with_a_dead_destination_returns_false_and_counts_leftovers_as_dropped(sinks: list[BaseSink]) -> None:
    sink = FlakySink()
    for index in range(5):
        sink.enqueue(event(index))
    assert sink.stop(timeout=0.3) is False
    assert not sink.is_running
    stats = sink.stats
    assert (stats.received, stats.delivered, stats.dropped, stats.queued) == (5, 0, 5, 0)
    assert "undelivered" in (stats.last_error or "")
    assert sink not in streamll.running_sinks()


def test_stop_gives_up_on_a_write_that_never_returns(sinks: list[BaseSink]) -> None:
    sink = GatedSink()
    _fill_behind_gate(sink, 5)
    sink.allow(1)  # event 0 is written; events 1-5 go to the destination as one batch, which never returns
    wait_until(lambda: sink.started == 2, what="the second write to start")
    sink.enqueue(event(6))
    assert sink.stats.queued == 6
    started = time.monotonic()
    assert sink.stop(timeout=0.3) is False
    assert time.monotonic() - started < 3.0  # the stop timeout bounds stop(), not the destination
    assert not sink.is_running
    stats = sink.stats
    assert (stats.received, stats.delivered, stats.dropped, stats.queued) == (7, 1, 6, 0)


def test_stop_delivers_what_is_buffered(sinks: list[BaseSink]) -> None:
    sink = GatedSink()
    _fill_behind_gate(sink, 20)
    sink.open_gate()
    assert sink.stop(timeout=10) is True
    assert indices(sink.written) == list(range(21))
    assert sink.stats.dropped == 0


def test_an_idle_sink_nobody_references_is_collected_quietly(caplog: pytest.LogCaptureFixture) -> None:
    sink = FlakySink(failures=0)
    sink.enqueue(event(0))
    assert sink.flush(timeout=10)
    gone = weakref.ref(sink)
    with caplog.at_level(logging.DEBUG):
        del sink
        gc.collect()
        assert gone() is None
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_stats_shows_each_running_sinks_counters(memory_sink: streamll.MemorySink) -> None:
    for index in range(3):
        streamll.emit("custom", data={"i": index})
    assert streamll.flush(timeout=10)
    stats = streamll.stats()["test-memory"]
    assert (stats.received, stats.delivered, stats.dropped, stats.queued) == (3, 3, 0, 0)
    assert stats.as_dict()["delivered"] == 3


# ---------------------------------------------------------------------- options


@pytest.mark.parametrize(
    "options",
    [
        {"buffer_size": 0},
        {"batch_size": 0},
        {"linger": -1},
        {"overflow": "sometimes"},
        {"block_timeout": -1},
        {"buffer_size": "100"},
        {"batch_size": 2.5},
    ],
)
def test_bad_options_raise_configuration_error(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        FlakySink(**options)


def test_bad_terminal_url_raises_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="stdout or stderr"):
        TerminalSink.from_url("terminal://printer")


# ---------------------------------------------------------------------- interpreter exit


EXIT_PROGRAM = """
import sys, time
import streamll
from streamll.sinks.base import BaseSink

class FileSink(BaseSink):
    def __init__(self, path):
        super().__init__(batch_size=10)
        self.path = path

    def handle_event(self, event):
        time.sleep(0.002)  # a slow-ish destination
        with open(self.path, "a") as out:
            out.write(f"{event.data['i']}\\n")

streamll.configure(sinks=[FileSink(sys.argv[1])])
for index in range(200):
    streamll.emit("custom", data={"i": index})
print("exiting without flush", flush=True)
"""


def _run(program: str, *args: str, exit_timeout: str = "20") -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("STREAMLL_")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, "STREAMLL_EXIT_TIMEOUT": exit_timeout},
    )


def test_interpreter_exit_drains_a_handle_event_sink(tmp_path: Path) -> None:
    out = tmp_path / "events.txt"
    result = _run(EXIT_PROGRAM, str(out))
    assert result.returncode == 0, result.stderr
    assert "exiting without flush" in result.stdout
    assert out.read_text().split() == [str(index) for index in range(200)], result.stderr
    assert "failed" not in result.stderr and "dropped" not in result.stderr


def test_interpreter_exit_drains_the_default_terminal_sink() -> None:
    program = """
    import streamll
    for index, word in enumerate(["Machine", " learning", " is", " fun"] * 25):
        streamll.emit("token", data={"token": word, "token_index": index, "field": "answer"})
    """
    result = _run(program)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        '[TOKEN] answer: "Machine"',
        '[TOKEN] answer: " learning"',
        '[TOKEN] answer: " is"',
        '[TOKEN] answer: " fun"',
    ]
    assert len(lines) == 100, result.stderr


FORK_PROGRAM = """
import os, sys
import streamll
from streamll.sinks.memory import MemorySink

sink = MemorySink(name="forked")
streamll.configure(sinks=[sink])
streamll.emit("custom", data={"who": "parent"})
assert streamll.flush(10)
pid = os.fork()
if pid == 0:
    streamll.emit("custom", data={"who": "child"})
    delivered = streamll.flush(10)
    print("child", delivered, [event.data["who"] for event in sink.events], sink.stats.received, flush=True)
    sys.exit(0)
streamll.emit("custom", data={"who": "parent-after"})
delivered = streamll.flush(10)
_, status = os.waitpid(pid, 0)
print("parent", delivered, [event.data["who"] for event in sink.events], os.waitstatus_to_exitcode(status), flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_delivers_its_own_events() -> None:
    result = _run(FORK_PROGRAM, exit_timeout="2")
    assert result.returncode == 0, result.stderr
    lines = sorted(result.stdout.splitlines())
    assert lines == [
        "child True ['parent', 'child'] 1",  # a fresh worker and counters; the parent's buffer stays the parent's
        "parent True ['parent', 'parent-after'] 0",
    ], result.stderr
    assert "Traceback" not in result.stderr and "destroyed" not in result.stderr, result.stderr
