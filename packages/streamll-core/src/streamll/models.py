"""0.1 module path, deprecated: ``from streamll.models import Event`` is now ``from streamll import Event``."""

from __future__ import annotations

from typing import Any

_MOVED = {
    "Event": ("streamll.core.events", "Event", "`from streamll import Event`"),
    "generate_event_id": ("streamll.core.events", "new_event_id", "`from streamll.core.events import new_event_id`"),
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib

        from streamll.deprecation import deprecated

        module, attribute, instead = _MOVED[name]
        deprecated(f"streamll.models.{name}", instead)
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Event", "generate_event_id"]  # noqa: F822 - provided by __getattr__ with a deprecation warning
