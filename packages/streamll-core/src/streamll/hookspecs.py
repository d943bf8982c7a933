"""Plugin hook specifications (pluggy project ``"streamll"``).

A plugin is a module or object with functions marked ``@streamll.hookimpl``,
published through the ``streamll`` entry-point group::

    [project.entry-points.streamll]
    redis = "streamll_redis.plugin"

Hooks are registration callbacks: streamll calls them once when plugins load,
never on the per-event path.
"""

from __future__ import annotations

import importlib
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
class OldName:
    """A name streamll 0.1 had in core (``streamll.RedisSink``) that a plugin provides now, with a warning."""

    name: str
    target: str
    """What the name loads now, as ``"module:attribute"``."""
    instead: str
    """What to write instead (the deprecation warning shows it)."""


@dataclass(frozen=True)
class PluginCard:
    """What a transport plugin is, for install hints and the names core offers on its behalf.

    ``extra``: ``pip install 'streamll[EXTRA]'`` installs the plugin (``None``: not a streamll extra);
    ``schemes``: the URL schemes it serves; ``consumer``: its consumer class as ``"module:Class"``,
    importable as ``streamll.consumer.Class``; ``old_names``: streamll 0.1 names it provides now.
    """

    extra: str | None
    schemes: tuple[str, ...]
    consumer: str | None = None
    old_names: tuple[OldName, ...] = ()

    @property
    def consumer_name(self) -> str | None:
        """The consumer class's name (``RedisStreamConsumer``), if the plugin has one."""
        return self.consumer.rpartition(":")[2] if self.consumer else None

    def load(self, name: str, target: str) -> Any:
        """Import ``target`` (``"module:attribute"``), which provides ``name``; if the plugin is missing, say what
        to install."""
        module_name, _, attribute = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            hint = (
                f"pip install 'streamll[{self.extra}]'"
                if self.extra
                else f"install the package providing {module_name}"
            )
            raise ImportError(f"{name} needs the {self.extra or module_name} plugin: {hint}", name=name) from exc
        return getattr(module, attribute)


@hookspec(firstresult=True)
def streamll_plugin_card() -> PluginCard | None:
    """Describe the plugin (optional): its extra, URL schemes, consumer class and the 0.1 names it provides."""


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
    "OldName",
    "PluginCard",
    "SinkFactory",
    "hookimpl",
    "hookspec",
]
