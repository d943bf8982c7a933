"""Every exception streamll raises, in one tree.

``StreamllError``
  ├── ``ConfigurationError``       bad arguments, URLs or environment
  │     └── ``UnknownSchemeError``  no plugin serves a URL scheme (names the extra to install)
  ├── ``PluginError``              a plugin failed to load or misbehaved
  ├── ``MalformedEventError``      a message on a transport is not a v1 event
  └── ``ConsumerError``            a consumer was used in a wrong state
"""

from __future__ import annotations


class StreamllError(Exception):
    """Base class of every streamll exception."""


class ConfigurationError(StreamllError, ValueError):
    """Bad arguments, sink URL or environment variable."""


class UnknownSchemeError(ConfigurationError):
    """No installed plugin handles this URL scheme."""

    def __init__(self, scheme: str, kind: str, extra: str | None, available: list[str]) -> None:
        """Name the scheme, the kind of factory missing, the extra that would provide it, and what is available."""
        self.scheme = scheme
        self.kind = kind
        self.extra = extra
        hint = f"install it with: pip install 'streamll[{extra}]'" if extra else "install a plugin that registers it"
        known = ", ".join(sorted(available)) or "none"
        super().__init__(f"no {kind} for URL scheme {scheme!r}; {hint} (available: {known})")


class PluginError(StreamllError):
    """A plugin failed to load or registered something invalid."""


class MalformedEventError(StreamllError, ValueError):
    """A message is not a valid wire-format v1 event."""


class ConsumerError(StreamllError, RuntimeError):
    """A consumer was used before ``start()`` or after ``stop()``."""


__all__ = [
    "ConfigurationError",
    "ConsumerError",
    "MalformedEventError",
    "PluginError",
    "StreamllError",
    "UnknownSchemeError",
]
