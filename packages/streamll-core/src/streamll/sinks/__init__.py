"""Sinks: where events go. ``BaseSink`` is the class to subclass."""

from typing import Any

from streamll.sinks.adapter import SinkAdapter
from streamll.sinks.base import BaseSink, Overflow
from streamll.sinks.memory import MemorySink
from streamll.sinks.results import BatchResult
from streamll.sinks.stats import SinkStats
from streamll.sinks.terminal import TerminalSink


def __getattr__(name: str) -> Any:
    """0.1's ``from streamll.sinks import RedisSink``: loaded from the installed plugin, with a deprecation warning."""
    from streamll.deprecation import PLUGIN_NAMES, REMOVED, plugin_name

    if name in PLUGIN_NAMES or name in REMOVED:
        return plugin_name(__name__, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BaseSink", "BatchResult", "MemorySink", "Overflow", "SinkAdapter", "SinkStats", "TerminalSink"]
