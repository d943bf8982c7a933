"""Plugin hook specifications (pluggy project ``"streamll"``).

A plugin is a module or object with functions marked ``@streamll.hookimpl``,
published through the ``streamll`` entry-point group::

    [project.entry-points.streamll]
    redis = "streamll_redis.plugin"

Hooks are registration callbacks: streamll calls them once when plugins load,
never on the per-event path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from streamll.sinks.base import BaseSink

PROJECT_NAME = "streamll"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

SinkFactory = Callable[[str], "BaseSink"]
"""Builds a sink from a URL; a class whose constructor takes the URL works."""
ConsumerFactory = Callable[..., Any]
"""Builds a ``streamll.consumer.BaseConsumer`` from a URL (extra keyword options allowed).

Typed loosely on purpose: the consumer and execution-log modules sit above the plugin
registry (they build through it), so the hook contract does not import them."""
ExecutionLogFactory = Callable[[str], Any]
"""Builds a ``streamll.executions.ExecutionLog`` (the web relay's source) from a URL."""


@dataclass(frozen=True)
class PluginCard:
    """What a transport plugin is, for install hints and the names ``streamll.consumer`` offers lazily.

    ``extra``: ``pip install 'streamll[EXTRA]'`` installs the plugin (``None``: not a streamll extra);
    ``schemes``: the URL schemes it serves; ``consumer``: its consumer class as ``"module:Class"``,
    importable as ``streamll.consumer.Class``.
    """

    extra: str | None
    schemes: tuple[str, ...]
    consumer: str | None = None

    @property
    def consumer_name(self) -> str | None:
        """The consumer class's name (``RedisStreamConsumer``), if the plugin has one."""
        return self.consumer.rpartition(":")[2] if self.consumer else None


@hookspec(firstresult=True)
def streamll_plugin_card() -> PluginCard | None:
    """Describe the plugin (optional): its extra, URL schemes and consumer class."""


@hookspec
def streamll_register_sinks(register: Callable[[str, SinkFactory], Any]) -> None:
    """Register sink factories by URL scheme: ``register("redis", RedisSink.from_url)``."""


@hookspec
def streamll_register_consumers(register: Callable[[str, ConsumerFactory], Any]) -> None:
    """Register consumer factories by URL scheme: ``register("redis", RedisStreamConsumer.from_url)``."""


@hookspec
def streamll_register_execution_logs(register: Callable[[str, ExecutionLogFactory], Any]) -> None:
    """Register per-execution readers by URL scheme: ``register("redis", RedisExecutionLog.from_url)``."""


__all__ = [
    "PROJECT_NAME",
    "ConsumerFactory",
    "ExecutionLogFactory",
    "PluginCard",
    "SinkFactory",
    "hookimpl",
    "hookspec",
]
