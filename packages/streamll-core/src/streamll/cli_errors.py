"""One line for a failed CLI command: what went wrong, where, and what to do (``--debug`` for the traceback).

Every transport fails in its own words (redis-py, nats-py and aiokafka name a
refused connection three different ways); the CLI says the same thing for all.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

from streamll.errors import ConfigurationError
from streamll.plugins import mask_credentials
from streamll.sinks.shutdown import probe_refused, refused

AUTH_WORDS = (
    "authorization violation",
    "authentication",
    "wrongpass",
    "noauth",
    "invalid username-password",
    "invalid password",
    "not authorized",
    "sasl",
    "auth failed",
    "permission denied",
)
"""Words the transports' clients use when the server rejects the credentials."""

CONNECT_TYPES = ("NoServersError", "KafkaConnectionError", "ConnectionClosedError", "NodeNotReadyError")
"""Client exception names that mean the server could not be reached (matched by name: no import needed)."""


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _detail(exc: BaseException) -> str:
    text = mask_credentials(" ".join(str(exc).split()))
    name = type(exc).__name__
    text = text if text.startswith(name) else f"{name}: {text}" if text else name
    return text if len(text) <= 200 else text[:197] + "..."


def describe(exc: BaseException, command: str, url: str | None = None) -> str:
    """The one line ``streamll COMMAND`` prints for ``exc`` (credentials in ``url`` and messages masked)."""
    where = mask_credentials(url) if url else "the server"
    prefix = f"streamll {command}:"
    errors = list(chain(exc))
    for error in errors:
        if isinstance(error, ConfigurationError):
            return f"{prefix} {mask_credentials(str(error))}"
    for error in errors:
        if any(word in str(error).lower() for word in AUTH_WORDS) or "Authentication" in type(error).__name__:
            return (
                f"{prefix} {where} rejected the credentials ({_detail(error)}); "
                "check the user, password or token in the URL or its environment variables"
            )
    if refused(exc) or (url is not None and probe_refused(url)):
        return f"{prefix} connection refused by {where}; is the server running, and are the host and port right?"
    for error in errors:
        if isinstance(error, socket.gaierror):
            return f"{prefix} cannot resolve the host of {where} ({_detail(error)}); check the host name"
    for error in errors:
        if isinstance(error, (ConnectionError, TimeoutError, OSError)) or type(error).__name__ in CONNECT_TYPES:
            return (
                f"{prefix} cannot connect to {where} ({_detail(error)}); "
                "is the server running and reachable, and is the URL right?"
            )
    if "connect" in str(exc).lower():
        return f"{prefix} cannot connect to {where} ({_detail(exc)}); is the server running, and is the URL right?"
    return f"{prefix} {_detail(exc)} (run with --debug for the traceback)"


__all__ = ["chain", "describe"]
