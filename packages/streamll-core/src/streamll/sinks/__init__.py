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
    from streamll.old_names import plugin_name

    return plugin_name(__name__, name)  # AttributeError for a name that is not 0.1's


__all__ = ["BaseSink", "BatchResult", "MemorySink", "Overflow", "SinkAdapter", "SinkStats", "TerminalSink"]
