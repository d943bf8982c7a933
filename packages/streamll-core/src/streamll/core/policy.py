"""What may leave the process: the event filter and the redaction hook set with ``configure``.

:func:`outgoing` runs once per event in ``dispatch``, before any sink sees it,
so a redaction applies to every sink alike (terminal, memory, every transport).
With neither set, it costs one global read per event.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from streamll.core.events import Event, TokenEvent
from streamll.core.records import TokenRecord, materialize
from streamll.errors import ConfigurationError

logger = logging.getLogger("streamll")

Redactor = Callable[[Event], "Event | None"]
"""``redact(event)``: change the event (in place or by returning another) or return ``None`` to keep it in."""


@dataclass(frozen=True)
class Policy:
    """The process-wide outgoing rules."""

    event_filter: frozenset[str] | None = None
    """Only these event types leave the process (``None``: all)."""
    redact: Redactor | None = None
    """Called with every event that passes the filter, before any sink gets it."""


@dataclass
class PolicyStats:
    """Events the policy kept in the process (none of them is a delivery failure)."""

    filtered: int = 0
    """Events whose type the ``event_filter`` does not list."""
    redacted: int = 0
    """Events the ``redact`` hook returned ``None`` for."""
    redact_errors: int = 0
    """Events dropped because the ``redact`` hook raised or returned something that is not an event."""


_policy: Policy | None = None
_stats = PolicyStats()
_stats_lock = threading.Lock()
_last_error: list[str] = [""]


def check_event_filter(event_filter: Iterable[str] | None) -> frozenset[str] | None:
    """``event_filter`` as a frozenset of event types; a clear error for anything else."""
    if event_filter is None:
        return None
    if isinstance(event_filter, (str, bytes)):
        raise ConfigurationError(
            f"event_filter must be a set of event types, e.g. {{{event_filter!r}}}, not a single string"
        )
    try:
        types = frozenset(event_filter)
    except TypeError:
        raise ConfigurationError(f"event_filter must be a set of event types, got {event_filter!r}") from None
    for name in types:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"event_filter must hold event type names, got {name!r}")
    return types


def check_redact(redact: Any) -> Redactor | None:
    """``redact`` if it is callable (or None); a clear error otherwise."""
    if redact is not None and not callable(redact):
        raise ConfigurationError(
            f"redact must be a function taking an event and returning it (or None), got {redact!r}"
        )
    return redact  # type: ignore[no-any-return]


def current() -> Policy | None:
    """The rules in force (``None``: everything leaves unchanged)."""
    return _policy


def install(policy: Policy | None) -> None:
    """Put ``policy`` in force (``None`` or an empty policy: no rules)."""
    global _policy
    if policy is not None and policy.event_filter is None and policy.redact is None:
        policy = None
    _policy = policy


def stats() -> PolicyStats:
    """A copy of the counters."""
    with _stats_lock:
        return PolicyStats(_stats.filtered, _stats.redacted, _stats.redact_errors)


def _count(field: str) -> None:
    with _stats_lock:
        setattr(_stats, field, getattr(_stats, field) + 1)


def _report(message: str, *args: object) -> None:
    """Log a redaction failure, once per distinct message (a broken hook must not flood the log)."""
    text = message % args
    if text != _last_error[0]:
        _last_error[0] = text
        logger.error(text)


def outgoing(event: Event | TokenRecord) -> Event | TokenRecord | None:
    """``event`` as it may leave the process, or ``None`` when it must stay in.

    A redaction hook that raises drops the event (fails closed: a bug in the
    hook never lets the unredacted event out) and is logged and counted. The
    hook always gets an :class:`Event`: a token record is built into its event first.
    """
    policy = _policy
    if policy is None:
        return event
    if policy.event_filter is not None and event.event_type not in policy.event_filter:
        _count("filtered")
        return None
    redact = policy.redact
    if redact is None:
        return event
    event = materialize(event)
    token_before = event.token if isinstance(event, TokenEvent) else None
    try:
        result = redact(event)
    except Exception as exc:
        _count("redact_errors")
        _report("streamll: the redact hook raised %s: %s; the event was not sent", type(exc).__name__, exc)
        return None
    if result is None:
        _count("redacted")
        return None
    if not isinstance(result, Event):
        _count("redact_errors")
        _report("streamll: the redact hook returned %s, not an event or None; the event was not sent", type(result))
        return None
    if isinstance(result, TokenEvent):
        _sync_token(result, token_before)
    return result


def _sync_token(event: TokenEvent, before: str | None) -> None:
    """A token changed through ``event.token`` or ``event.data["token"]`` is changed in both (the wire reads data)."""
    if event.token != before:
        event.data["token"] = event.token
    elif event.data.get("token") != before:
        value = event.data.get("token")
        event.token = value if isinstance(value, str) else ""
        event.data["token"] = event.token


__all__ = [
    "Policy",
    "PolicyStats",
    "Redactor",
    "check_event_filter",
    "check_redact",
    "current",
    "install",
    "outgoing",
    "stats",
]
