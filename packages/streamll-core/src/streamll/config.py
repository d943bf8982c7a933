"""Which sinks events go to: ``configure()``, ``STREAMLL_SINKS``, or the terminal default.

Precedence: sinks given to ``@instrument(sinks=...)`` for that module, then
``configure(sinks=...)``, then the ``STREAMLL_SINKS`` environment variable
(comma-separated URLs), then the default :class:`~streamll.sinks.TerminalSink`.
``configure(sinks=[])`` or ``STREAMLL_SINKS=none`` means no sinks at all; an
empty or blank ``STREAMLL_SINKS`` counts as unset (the terminal default). A bad
URL given to ``configure`` raises :class:`~streamll.errors.ConfigurationError`;
one in ``STREAMLL_SINKS`` is logged once and skipped, never raised into
``emit`` (and when it names no usable sink at all, the log says that nothing
will be printed: the terminal default is off once the variable is set).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from streamll.errors import ConfigurationError

if TYPE_CHECKING:
    from streamll.sinks.base import BaseSink

SINKS_ENV = "STREAMLL_SINKS"
NO_SINKS = "none"
"""``STREAMLL_SINKS=none``: send events nowhere (an empty value counts as unset)."""

logger = logging.getLogger("streamll")

_lock = threading.Lock()
_configured: tuple[BaseSink, ...] | None = None
_owned: list[BaseSink] = []
_from_env: tuple[str, tuple[BaseSink, ...]] | None = None
_default: tuple[BaseSink, ...] | None = None


def resolve_sinks(sinks: Iterable[Any]) -> tuple[tuple[BaseSink, ...], list[BaseSink]]:
    """Turn sink objects and URLs into sinks; returns (all, the ones built from URLs)."""
    from streamll.plugins import create_sink
    from streamll.sinks.base import BaseSink

    if isinstance(sinks, (str, bytes)):
        raise ConfigurationError("sinks must be a list of sinks or URLs, not a single string")
    resolved: list[BaseSink] = []
    built: list[BaseSink] = []
    for item in sinks:
        if isinstance(item, str):
            sink = create_sink(item)
            built.append(sink)
        else:
            sink = item
        if not isinstance(sink, BaseSink):
            raise ConfigurationError(f"not a sink: {item!r} (expected a BaseSink or a URL)")
        resolved.append(sink)
    return tuple(resolved), built


def configure(sinks: Sequence[Any] | None = None) -> None:
    """Set the process-wide sinks: ``BaseSink`` objects and/or URLs.

    ``configure(sinks=["redis://localhost:6379/0?stream=streamll"])`` streams to
    Redis; ``configure(sinks=[])`` disables output; ``configure(sinks=None)``
    returns to the environment / terminal default. Sinks built here from URLs
    are stopped (drained) when replaced; sink objects you pass stay yours.
    """
    global _configured
    resolved, built = resolve_sinks(sinks) if sinks is not None else (None, [])
    with _lock:
        previous = list(_owned)
        _owned[:] = built
        _configured = resolved
    for sink in resolved or ():
        sink.start()
    for sink in previous:
        if sink not in (resolved or ()):
            sink.stop()


def _env_sinks(raw: str) -> tuple[BaseSink, ...]:
    """The sinks ``STREAMLL_SINKS`` names, built once per value.

    This runs on the emit path, so it never raises: a URL that cannot be used
    is logged once and skipped, and events go to the other sinks.
    """
    global _from_env
    cached = _from_env
    if cached is not None and cached[0] == raw:
        return cached[1]
    with _lock:
        if _from_env is not None and _from_env[0] == raw:
            return _from_env[1]
        from streamll.plugins import mask_credentials

        sinks: list[BaseSink] = []
        skipped = 0
        for url in (part.strip() for part in raw.split(",")):
            if not url or url.lower() == NO_SINKS:
                continue
            try:
                resolved, _built = resolve_sinks([url])
            except Exception as exc:
                logger.error(
                    "streamll: %s: cannot use %r, skipped (events go to the other sinks): %s",
                    SINKS_ENV,
                    mask_credentials(url),
                    mask_credentials(str(exc)),
                )
                skipped += 1
                continue
            sinks.extend(resolved)
        if skipped and not sinks:
            logger.error(
                "streamll: %s names no usable sink, and setting it turns the terminal default off: "
                "nothing will be printed or sent. Fix the URL, add terminal:// to the list, or unset %s",
                SINKS_ENV,
                SINKS_ENV,
            )
        _from_env = (raw, tuple(sinks))
        return _from_env[1]


def _default_sinks() -> tuple[BaseSink, ...]:
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                from streamll.sinks.terminal import TerminalSink

                _default = (TerminalSink(name="terminal"),)
    return _default


def active_sinks() -> tuple[BaseSink, ...]:
    """The sinks events go to when a module names none of its own."""
    configured = _configured
    if configured is not None:
        return configured
    raw = os.environ.get(SINKS_ENV)
    if raw is not None and raw.strip():
        return _env_sinks(raw)
    return _default_sinks()


__all__ = ["SINKS_ENV", "active_sinks", "configure", "resolve_sinks"]
