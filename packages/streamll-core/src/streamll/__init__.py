"""streamll: watch a DSPy program think.

``@streamll.instrument(stream_fields=["answer"])`` on a ``dspy.Module`` turns
each call into events (a :class:`~streamll.core.events.TokenEvent` per chunk of
the chosen fields, start / end / error around the module and its LM calls)
delivered to sinks: the terminal by default, or Redis, NATS or Kafka through
their plugins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamll.config import Configuration, configure
from streamll.core import events
from streamll.core.context import get_context, set_context
from streamll.core.emitter import emit
from streamll.core.events import (
    EndEvent,
    ErrorEvent,
    Event,
    StartEvent,
    StatusEvent,
    TokenEvent,
    ToolEndEvent,
    ToolErrorEvent,
    ToolStartEvent,
)
from streamll.core.runs import ExecutionCancelled
from streamll.core.spans import Span
from streamll.errors import (
    ConfigurationError,
    ConsumerError,
    MalformedEventError,
    PluginError,
    StreamllError,
    UnknownSchemeError,
)
from streamll.executions import acancel, cancel
from streamll.hookspecs import hookimpl
from streamll.sinks.base import BaseSink, Overflow
from streamll.sinks.memory import MemorySink
from streamll.sinks.registry import flush_all as _flush_all
from streamll.sinks.registry import running_sinks
from streamll.sinks.stats import SinkStats
from streamll.sinks.terminal import TerminalSink
from streamll.tracing import ExecutionRun, execution, trace

if TYPE_CHECKING:
    from streamll.decorator import instrument
    from streamll.event_consumer import EventConsumer

__version__ = "0.2.0"


def __getattr__(name: str) -> Any:
    """``instrument`` (DSPy) and ``EventConsumer`` load on first use: consumers and the CLI start fast."""
    if name == "instrument":
        from streamll.decorator import instrument

        globals()["instrument"] = instrument
        return instrument
    if name == "EventConsumer":
        from streamll.event_consumer import EventConsumer

        globals()["EventConsumer"] = EventConsumer
        return EventConsumer
    from streamll.old_names import plugin_name

    return plugin_name(__name__, name)  # 0.1's streamll.RedisSink / streamll.RabbitMQSink, else AttributeError


def flush(timeout: float | None = None) -> bool:
    """Wait until every sink has delivered the events emitted so far.

    Returns False when ``timeout`` seconds passed first (a destination is down
    and events are still buffered: see :func:`stats`).
    """
    return _flush_all(timeout)


def stats() -> dict[str, SinkStats]:
    """Counters of every running sink by sink name (``name#2`` for a second sink of the same name)."""
    result: dict[str, SinkStats] = {}
    for sink in running_sinks():
        key, number = sink.name, 1
        while key in result:
            number += 1
            key = f"{sink.name}#{number}"
        result[key] = sink.stats
    return result


__all__ = [
    "BaseSink",
    "Configuration",
    "ConfigurationError",
    "ConsumerError",
    "EndEvent",
    "ExecutionCancelled",
    "ExecutionRun",
    "ErrorEvent",
    "Event",
    "EventConsumer",
    "MalformedEventError",
    "MemorySink",
    "Overflow",
    "PluginError",
    "SinkStats",
    "Span",
    "StartEvent",
    "StatusEvent",
    "StreamllError",
    "TerminalSink",
    "TokenEvent",
    "ToolEndEvent",
    "ToolErrorEvent",
    "ToolStartEvent",
    "UnknownSchemeError",
    "__version__",
    "acancel",
    "cancel",
    "configure",
    "emit",
    "events",
    "execution",
    "flush",
    "get_context",
    "hookimpl",
    "instrument",
    "set_context",
    "stats",
    "trace",
]
