"""Names kept from streamll 0.1: each works and warns, saying what to write instead."""

from __future__ import annotations

import importlib
import warnings
from typing import Any

PLUGIN_NAMES: dict[str, tuple[str, str, str, str]] = {
    "RedisSink": (
        "streamll_redis.legacy",
        "LegacyRedisSink",
        "redis",
        "from streamll_redis import RedisSink; RedisSink('redis://localhost:6379/0', stream='KEY')",
    ),
}
"""0.1 names provided by a plugin now: (module, attribute, extra, what to write instead)."""

REMOVED: dict[str, str] = {
    "RabbitMQSink": (
        "RabbitMQSink was removed in streamll 0.2 (RabbitMQ is not a supported transport): use Redis, NATS or "
        "Kafka, e.g. `pip install 'streamll[redis]'` and streamll.configure(sinks=['redis://localhost:6379/0'])"
    ),
}


def deprecated(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated in favour of ``new`` (both as the user would write them)."""
    warnings.warn(f"{old} is deprecated: write {new}", DeprecationWarning, stacklevel=stacklevel)


def plugin_name(owner: str, name: str) -> Any:
    """A 0.1 plugin-provided name (``streamll.sinks.RedisSink``): warns, then loads it from the installed plugin."""
    if name in REMOVED:
        raise ImportError(REMOVED[name], name=name)
    module_name, attribute, extra, instead = PLUGIN_NAMES[name]
    deprecated(f"{owner}.{name}", f"`{instead}`", stacklevel=4)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"{name} needs the {extra} plugin: pip install 'streamll[{extra}]'", name=name) from exc
    return getattr(module, attribute)


__all__ = ["PLUGIN_NAMES", "REMOVED", "deprecated", "plugin_name"]
