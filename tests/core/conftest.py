"""Fixtures for the core tests: controlled plugin entry points."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint

import pytest
import streamll
from streamll.plugins import ENTRY_POINT_GROUP, reload_plugins
from streamll.sinks.base import BaseSink

from tests.core.support import FlakySink, GatedSink


def entry_point(name: str, value: str) -> EntryPoint:
    """An entry point in streamll's group, as an installed distribution would declare it."""
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


@pytest.fixture
def installed_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """``installed_plugins(*entry_points)`` makes those the only installed plugins (none by default).

    Plugins are reloaded when the set changes and after the test, so what one
    test registers never leaks into another.
    """

    def install(*entry_points: EntryPoint) -> None:
        def fake_entry_points(**params: str) -> list[EntryPoint]:
            assert params == {"group": ENTRY_POINT_GROUP}
            return list(entry_points)

        monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
        reload_plugins()

    install()
    yield install
    streamll.configure(sinks=None)
    reload_plugins()


@pytest.fixture
def sinks() -> Iterator[list[BaseSink]]:
    """Sinks a test starts; each is let through and stopped afterwards."""
    started: list[BaseSink] = []
    yield started
    for sink in started:
        if isinstance(sink, GatedSink):
            sink.open_gate()
        if isinstance(sink, FlakySink):
            sink.up.set()
        sink.stop(timeout=5)
