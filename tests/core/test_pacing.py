"""Pacing writes: ``linger`` gathers a batch before writing, ``min_write_interval`` spaces writes unless one is full."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from streamll.core.events import Event
from streamll.sinks.base import BaseSink

from tests.core.support import GatedSink, event, indices
from tests.helpers import wait_until


@pytest.fixture
def sinks() -> Iterator[list[BaseSink]]:
    """Sinks a test starts; each is let through and stopped afterwards."""
    started: list[BaseSink] = []
    yield started
    for sink in started:
        if isinstance(sink, GatedSink):
            sink.open_gate()
        sink.stop(timeout=5)


class Paced(GatedSink):
    """Notes when each write starts."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.starts: list[float] = []

    async def write_batch(self, events: list[Event]) -> int | None:
        self.starts.append(time.monotonic())
        return await super().write_batch(events)


def test_linger_gathers_what_arrives_meanwhile_into_the_first_batch(sinks: list[BaseSink]) -> None:
    sink = Paced(linger=0.5, batch_size=10)
    sinks.append(sink)
    sink.open_gate()
    for index in range(5):
        sink.enqueue(event(index))
    assert sink.flush(timeout=10)
    assert [indices(batch) for batch in sink.batches] == [[0, 1, 2, 3, 4]]


def test_min_write_interval_spaces_writes_but_never_holds_a_full_batch(sinks: list[BaseSink]) -> None:
    sink = Paced(batch_size=2)
    sink.min_write_interval = 2.0
    sinks.append(sink)
    sink.enqueue(event(0))
    wait_until(lambda: sink.started == 1, what="the first write")
    sink.enqueue(event(1))
    sink.enqueue(event(2))
    sink.open_gate()
    assert sink.flush(timeout=1.0)  # a full batch goes at once, interval or not
    sink.enqueue(event(3))  # alone: it waits for the interval since the last write
    assert not sink.flush(timeout=0.2)
    assert sink.flush(timeout=10)
    assert [indices(batch) for batch in sink.batches] == [[0], [1, 2], [3]]
    assert sink.starts[2] - sink.starts[1] >= 2.0 - 0.01
