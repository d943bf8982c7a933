"""Names kept from streamll 0.1: each works and warns, saying what to write instead.

The 0.1 names a plugin provides now (``streamll.RedisSink``) are in :mod:`streamll.old_names`.
"""

from __future__ import annotations

import warnings

REMOVED: dict[str, str] = {
    "RabbitMQSink": (
        "RabbitMQSink was removed in streamll 0.2 (RabbitMQ is not a supported transport): use Redis, NATS or "
        "Kafka, e.g. `pip install 'streamll[redis]'` and streamll.configure(sinks=['redis://localhost:6379/0'])"
    ),
}


def deprecated(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated in favour of ``new`` (both as the user would write them)."""
    warnings.warn(f"{old} is deprecated: write {new}", DeprecationWarning, stacklevel=stacklevel)


__all__ = ["REMOVED", "deprecated"]
