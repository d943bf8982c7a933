"""Sinks: where events go. ``BaseSink`` is the class to subclass."""

from streamll.sinks.base import BaseSink, Overflow
from streamll.sinks.memory import MemorySink
from streamll.sinks.stats import SinkStats
from streamll.sinks.terminal import TerminalSink

__all__ = ["BaseSink", "MemorySink", "Overflow", "SinkStats", "TerminalSink"]
