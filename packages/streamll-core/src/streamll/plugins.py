"""Plugin discovery: entry points in group ``"streamll"``, loaded one by one.

A plugin that fails to import is reported (a warning, and in ``streamll
plugins``) and skipped; it never breaks ``import streamll``. Environment:

* ``STREAMLL_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry points (core sinks only).
* ``STREAMLL_DISABLE_PLUGINS=redis,nats``: skip the named entry points.
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pluggy

from streamll import builtin_plugin, hookspecs
from streamll.catalog import FIRST_PARTY
from streamll.errors import ConfigurationError, PluginError, UnknownSchemeError
from streamll.url_parts import mask_credentials

ENTRY_POINT_GROUP = "streamll"
DISABLE_AUTOLOAD_ENV = "STREAMLL_DISABLE_PLUGIN_AUTOLOAD"
DISABLE_PLUGINS_ENV = "STREAMLL_DISABLE_PLUGINS"


@dataclass
class PluginInfo:
    """One plugin as ``streamll plugins`` shows it."""

    name: str
    module: str
    version: str | None = None
    sink_schemes: list[str] = field(default_factory=list)
    consumer_schemes: list[str] = field(default_factory=list)
    execution_log_schemes: list[str] = field(default_factory=list)
    error: str | None = None
    card: hookspecs.PluginCard | None = None
    """What the plugin says about itself (``streamll_plugin_card``), if it says anything."""


@dataclass
class _Registry:
    manager: pluggy.PluginManager
    plugins: dict[str, PluginInfo]
    sinks: dict[str, tuple[hookspecs.SinkFactory, str]]
    consumers: dict[str, tuple[hookspecs.ConsumerFactory, str]]
    execution_logs: dict[str, tuple[hookspecs.ExecutionLogFactory, str]] = field(default_factory=dict)


_lock = threading.Lock()
_registry: _Registry | None = None


def _disabled() -> set[str]:
    raw = os.environ.get(DISABLE_PLUGINS_ENV, "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def _autoload() -> bool:
    return os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() not in ("1", "true", "yes")


def _load() -> _Registry:
    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    plugins: dict[str, PluginInfo] = {}
    manager.register(builtin_plugin, name="streamll.builtin")
    plugins["streamll.builtin"] = PluginInfo("streamll.builtin", builtin_plugin.__name__)
    if _autoload():
        disabled = _disabled()
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if entry_point.name in disabled or entry_point.name in plugins:
                continue
            version = entry_point.dist.version if entry_point.dist else None
            info = PluginInfo(entry_point.name, entry_point.value, version)
            plugins[entry_point.name] = info
            try:
                manager.register(entry_point.load(), name=entry_point.name)
            except Exception as exc:
                info.error = f"{type(exc).__name__}: {exc}"
                warnings.warn(
                    f"streamll plugin {entry_point.name!r} ({entry_point.value}) failed to load and was skipped: "
                    f"{info.error}",
                    RuntimeWarning,
                    stacklevel=3,
                )
    registry = _Registry(manager, plugins, {}, {})
    _collect(registry)
    return registry


def _collect(registry: _Registry, only: str | None = None) -> None:
    """Ask registered plugins (or just the one named ``only``) for their sink and consumer factories."""
    for plugin_name, plugin in registry.manager.list_name_plugin():
        if only is not None and plugin_name != only:
            continue
        info = registry.plugins.setdefault(plugin_name, PluginInfo(plugin_name, getattr(plugin, "__name__", "")))
        info.card = _card(registry.manager, plugin, plugin_name)
        for hook_name, table, schemes in (
            ("streamll_register_sinks", registry.sinks, info.sink_schemes),
            ("streamll_register_consumers", registry.consumers, info.consumer_schemes),
            ("streamll_register_execution_logs", registry.execution_logs, info.execution_log_schemes),
        ):
            hook = getattr(registry.manager.hook, hook_name)
            impls = [impl for impl in hook.get_hookimpls() if impl.plugin is plugin]

            def register(
                scheme: str, factory: Callable[..., Any], _table=table, _schemes=schemes, _plugin=plugin_name
            ) -> None:
                if not callable(factory):
                    raise PluginError(f"plugin {_plugin!r} registered a non-callable for scheme {scheme!r}")
                _table[scheme.lower()] = (factory, _plugin)
                _schemes.append(scheme.lower())

            for impl in impls:
                try:
                    impl.function(register=register)
                except Exception as exc:
                    info.error = f"{hook_name} raised {type(exc).__name__}: {exc}"
                    warnings.warn(f"streamll plugin {plugin_name!r}: {info.error}", RuntimeWarning, stacklevel=4)


def _card(manager: pluggy.PluginManager, plugin: object, name: str) -> hookspecs.PluginCard | None:
    """The card ``plugin`` returns from ``streamll_plugin_card``, if it implements the hook."""
    for impl in manager.hook.streamll_plugin_card.get_hookimpls():
        if impl.plugin is plugin:
            try:
                card = impl.function()
            except Exception as exc:
                message = f"streamll plugin {name!r}: streamll_plugin_card raised {exc!r}"
                warnings.warn(message, RuntimeWarning, stacklevel=5)
                return None
            return card if isinstance(card, hookspecs.PluginCard) else None
    return None


def registry() -> _Registry:
    """The loaded plugins (loaded on first use)."""
    global _registry
    if _registry is None:
        with _lock:
            if _registry is None:
                _registry = _load()
    return _registry


def reload_plugins() -> None:
    """Forget loaded plugins; the next use loads them again (after changing the environment)."""
    global _registry
    with _lock:
        _registry = None


def register_plugin(plugin: object, name: str | None = None) -> None:
    """Register a plugin object by hand (no entry point needed), e.g. in tests or an app."""
    reg = registry()
    plugin_name = reg.manager.register(plugin, name=name)
    if plugin_name is None:
        return
    reg.plugins[plugin_name] = PluginInfo(plugin_name, getattr(plugin, "__name__", type(plugin).__name__))
    _collect(reg, only=plugin_name)


def list_plugins() -> list[PluginInfo]:
    """Every plugin found, with its schemes or its load error."""
    return list(registry().plugins.values())


def sink_schemes() -> list[str]:
    """URL schemes that :func:`create_sink` accepts."""
    return sorted(registry().sinks)


def consumer_schemes() -> list[str]:
    """URL schemes that :func:`create_consumer` accepts."""
    return sorted(registry().consumers)


def _scheme(url: str) -> str:
    scheme = ""
    if isinstance(url, str) and "://" in url:
        try:
            scheme = urlsplit(url).scheme.lower()
        except ValueError:  # e.g. an unclosed [IPv6] bracket
            scheme = ""
    if not scheme:
        shown = mask_credentials(url) if isinstance(url, str) else url
        raise ConfigurationError(f"expected a URL like 'redis://localhost:6379', got {shown!r}")
    return scheme


def cards() -> dict[str, hookspecs.PluginCard]:
    """Plugin name -> card: what installed plugins declare, then the first-party catalogue for the rest."""
    declared = {info.name: info.card for info in registry().plugins.values() if info.card is not None}
    return {**{name: card for name, card in FIRST_PARTY.items() if name not in declared}, **declared}


def plugin_for_scheme(scheme: str) -> tuple[str, hookspecs.PluginCard] | None:
    """The (plugin name, card) that serves URL scheme ``scheme``, installed or first-party."""
    return next(((name, card) for name, card in cards().items() if scheme in card.schemes), None)


def plugin_consumer(name: str) -> hookspecs.PluginCard | None:
    """The card of the plugin whose consumer class is called ``name`` (``RedisStreamConsumer``)."""
    return next((card for card in cards().values() if card.consumer_name == name), None)


def _unknown(scheme: str, kind: str, table: dict[str, Any]) -> UnknownSchemeError:
    """The error for a scheme no loaded plugin serves, naming the extra that would."""
    found = plugin_for_scheme(scheme)
    error = UnknownSchemeError(scheme, kind, found[1].extra if found else None, list(table))
    info = registry().plugins.get(found[0]) if found else None
    if info is not None and info.error:
        error.add_note(f"plugin {info.name!r} is installed but failed to load: {info.error}")
    return error


def create_sink(url: str) -> Any:
    """Build a sink for ``url`` with the factory its scheme's plugin registered."""
    scheme = _scheme(url)
    table = registry().sinks
    if scheme not in table:
        raise _unknown(scheme, "sink", table)
    factory, _plugin = table[scheme]
    return factory(url)


def create_consumer(url: str, **options: Any) -> Any:
    """Build a consumer for ``url`` (keyword options are passed to the factory)."""
    scheme = _scheme(url)
    table = registry().consumers
    if scheme not in table:
        raise _unknown(scheme, "consumer", table)
    factory, _plugin = table[scheme]
    return factory(url, **options)


def create_execution_log(url: str) -> Any:
    """Build the per-execution reader (the web relay's source) for ``url``."""
    scheme = _scheme(url)
    table = registry().execution_logs
    if scheme not in table:
        raise _unknown(scheme, "execution log (web relay source)", table)
    factory, _plugin = table[scheme]
    return factory(url)


__all__ = [
    "DISABLE_AUTOLOAD_ENV",
    "DISABLE_PLUGINS_ENV",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "cards",
    "consumer_schemes",
    "create_consumer",
    "create_execution_log",
    "create_sink",
    "list_plugins",
    "mask_credentials",
    "plugin_consumer",
    "plugin_for_scheme",
    "register_plugin",
    "reload_plugins",
    "sink_schemes",
]
