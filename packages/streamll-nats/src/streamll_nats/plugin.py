"""Registers the NATS JetStream sink and consumer for the ``nats://`` and ``tls://`` URL schemes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamll.hookspecs import ConsumerFactory, ExecutionLogFactory, PluginCard, SinkFactory, hookimpl

from streamll_nats.consumer import NatsStreamConsumer
from streamll_nats.executions import NatsExecutionLog
from streamll_nats.sink import NatsSink
from streamll_nats.url import SCHEMES


@hookimpl
def streamll_plugin_card() -> PluginCard:
    """``pip install 'streamll[nats]'``; its schemes; ``streamll.consumer.NatsStreamConsumer``."""
    return PluginCard("nats", SCHEMES, "streamll_nats:NatsStreamConsumer")


@hookimpl
def streamll_register_sinks(register: Callable[[str, SinkFactory], Any]) -> None:
    """``nats://...`` and ``tls://...`` build a :class:`NatsSink`."""
    for scheme in SCHEMES:
        register(scheme, NatsSink.from_url)


@hookimpl
def streamll_register_consumers(register: Callable[[str, ConsumerFactory], Any]) -> None:
    """``nats://...`` and ``tls://...`` build a :class:`NatsStreamConsumer`."""
    for scheme in SCHEMES:
        register(scheme, NatsStreamConsumer.from_url)


@hookimpl
def streamll_register_execution_logs(register: Callable[[str, ExecutionLogFactory], Any]) -> None:
    """:class:`NatsExecutionLog` (the web relay's per-execution reader) for ``nats://`` and ``tls://``."""
    for scheme in SCHEMES:
        register(scheme, NatsExecutionLog.from_url)
