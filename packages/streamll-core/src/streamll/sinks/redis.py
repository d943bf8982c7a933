"""0.1 module path, deprecated: ``from streamll.sinks.redis import RedisSink`` loads the redis plugin's sink."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "RedisSink":
        from streamll.old_names import plugin_name

        return plugin_name("streamll.sinks", name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["RedisSink"]  # noqa: F822 - provided by __getattr__ with a deprecation warning
