"""Buffer limits of a sink: the overflow policies, option checks and the per-event size estimate."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from streamll.core.events import TokenEvent
from streamll.core.records import TokenRecord
from streamll.errors import ConfigurationError

if TYPE_CHECKING:
    from streamll.core.events import Event

EVENT_OVERHEAD = 360
"""Bytes an event's envelope takes once encoded (ids, timestamp, keys); the byte budget's per-event estimate."""

RECORD_OVERHEAD = EVENT_OVERHEAD + 6 * 16
"""The estimate for a token record: the envelope and the six ``data`` entries a token has on the wire."""


def check_count(option: str, value: object) -> None:
    """Raise a one-line :class:`ConfigurationError` unless ``value`` is a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{option} must be a whole number >= 1, got {value!r}")


def check_seconds(option: str, value: object) -> None:
    """Raise a one-line :class:`ConfigurationError` unless ``value`` is a number of seconds >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigurationError(f"{option} must be a number of seconds >= 0, got {value!r}")


class Overflow(str, Enum):  # noqa: UP042 - str() of a member stays "Overflow.SPILL"
    """What a sink does with a new event when its buffer is full."""

    DROP_OLDEST = "drop_oldest"
    """Discard the oldest buffered event (counted in ``stats.dropped``). The default.

    While the destination accepts writes (the last one succeeded), a full buffer first waits up to
    ``block_timeout`` for room: a healthy broker never causes a drop, a burst only waits for it. When
    the destination is down, nothing waits: the oldest event is dropped at once.
    """
    DROP_NEWEST = "drop_newest"
    """Discard the new event (counted in ``stats.dropped``)."""
    BLOCK = "block"
    """Wait up to ``block_timeout`` seconds for room, then discard the new event (counted)."""
    SPILL = "spill"
    """Append to a local file, replayed in order once the destination accepts writes again."""


def overflow_policy(value: Overflow | str) -> Overflow:
    """``value`` as an :class:`Overflow`; a one-line error naming the choices otherwise."""
    try:
        return Overflow(value)
    except ValueError:
        choices = ", ".join(policy.value for policy in Overflow)
        raise ConfigurationError(f"unknown overflow policy {value!r}; choose one of {choices}") from None


def estimate(event: Event | TokenRecord) -> int:
    """Bytes ``event`` will take encoded, without encoding it (the byte budget's measure)."""
    kind = type(event)
    if kind is TokenRecord:  # its data gets the four token fields when encoded
        return RECORD_OVERHEAD + len(event.token)  # type: ignore[union-attr]
    if kind is TokenEvent:
        return EVENT_OVERHEAD + len(event.data) * 16 + len(event.token)  # type: ignore[union-attr]
    size = EVENT_OVERHEAD
    for value in event.data.values():
        size += 16 + (len(value) if isinstance(value, (str, bytes)) else 64)
    return size


__all__ = [
    "EVENT_OVERHEAD",
    "RECORD_OVERHEAD",
    "Overflow",
    "check_count",
    "check_seconds",
    "estimate",
    "overflow_policy",
]
