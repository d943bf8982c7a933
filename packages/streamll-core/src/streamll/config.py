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
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from streamll.core import emitter, policy
from streamll.errors import ConfigurationError
from streamll.plugins import create_sink, mask_credentials
from streamll.sinks.adapter import adapt, is_duck_sink
from streamll.sinks.base import BaseSink
from streamll.sinks.terminal import TerminalSink

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
    if isinstance(sinks, (str, bytes)):
        raise ConfigurationError("sinks must be a list of sinks or URLs, not a single string")
    resolved: list[BaseSink] = []
    built: list[BaseSink] = []
    for item in sinks:
        if isinstance(item, str):
            sink = create_sink(item)
            built.append(sink)
        elif is_duck_sink(item):  # a 0.1-style object with handle_event: buffered and isolated like any sink
            sink = adapt(item)
            built.append(sink)
        else:
            sink = item
        if not isinstance(sink, BaseSink):
            raise ConfigurationError(
                f"not a sink: {item!r} (expected a BaseSink, an object with handle_event(event), or a URL)"
            )
        resolved.append(sink)
    return tuple(resolved), built


_UNSET: Any = object()


@dataclass(frozen=True)
class _State:
    configured: tuple[BaseSink, ...] | None
    owned: tuple[BaseSink, ...]
    policy: policy.Policy | None


class Configuration:
    """What :func:`configure` returns: use it as a context manager to restore the previous configuration.

    ``with streamll.configure(sinks=[...]):`` applies the new settings for the
    block and puts the previous sinks, event filter and redaction back on exit
    (sinks built inside from URLs or wrapped from plain objects are stopped,
    after delivering what they hold). Called without ``with``, the settings
    simply stay.
    """

    def __init__(self, previous: _State, permanent: bool) -> None:
        """Remember the configuration to restore (``permanent``: not on ``with`` exit)."""
        self._previous = previous
        self._permanent = permanent

    def __enter__(self) -> Configuration:
        """The configuration is already applied; ``with`` only restores it at the end."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Put the previous configuration back (unless ``permanent``)."""
        if not self._permanent:
            _apply(self._previous)

    def restore(self) -> None:
        """Put back the configuration that was in force before this ``configure`` call."""
        _apply(self._previous)


def _snapshot() -> _State:
    return _State(_configured, tuple(_owned), policy.current())


def _apply(state: _State) -> None:
    """Make ``state`` current; sinks this module built that ``state`` does not keep are stopped (drained)."""
    global _configured
    with _lock:
        retired = [sink for sink in _owned if sink not in state.owned]
        _owned[:] = state.owned
        _configured = state.configured
        policy.install(state.policy)
    for sink in state.configured or ():
        sink.start()
    for sink in retired:
        if sink not in (state.configured or ()):
            sink.stop()


def configure(
    sinks: Sequence[Any] | None = _UNSET,
    *,
    event_filter: Iterable[str] | None = _UNSET,
    redact: policy.Redactor | None = _UNSET,
    permanent: bool | None = None,
) -> Configuration:
    """Set process-wide sinks and outgoing rules; usable as a context manager that restores them.

    Args:
        sinks: ``BaseSink`` objects, objects with ``handle_event(event)``, and/or
            URLs. ``["redis://localhost:6379/0?stream=streamll"]`` streams to
            Redis; ``[]`` disables output; ``None`` returns to the environment /
            terminal default. Sinks built here from URLs (or wrapped from plain
            objects) are stopped, after delivering, when replaced; ``BaseSink``
            objects you pass stay yours.
        event_filter: only events of these types leave the process
            (``None``: all types).
        redact: ``redact(event)`` runs on every event before any sink sees it:
            change the event (``event.data``, ``event.tags``, a token's text) or
            return ``None`` to keep it in the process, e.g. to drop the tokens
            of one field: ``None if event.event_type == "token" and
            event.field == "ssn" else event``. If it raises, the event is
            dropped and the error logged. ``None`` removes the hook.

    An argument left out keeps its current setting. ``with
    streamll.configure(...):`` restores the previous settings when the block
    ends.
    """
    if permanent is not None:
        warnings.warn(
            "configure(permanent=...) is deprecated: configure() applies at once and stays; "
            "use `with streamll.configure(...):` for settings that end with a block",
            DeprecationWarning,
            stacklevel=2,
        )
    previous = _snapshot()
    new_policy = previous.policy or policy.Policy()
    if event_filter is not _UNSET:
        new_policy = policy.Policy(policy.check_event_filter(event_filter), new_policy.redact)
    if redact is not _UNSET:
        new_policy = policy.Policy(new_policy.event_filter, policy.check_redact(redact))
    if sinks is _UNSET:
        state = _State(previous.configured, previous.owned, new_policy)
    elif sinks is None:
        state = _State(None, (), new_policy)
    else:
        resolved, built = resolve_sinks(sinks)
        state = _State(resolved, tuple(built), new_policy)
    _apply(state)
    return Configuration(previous, permanent=bool(permanent))


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


emitter.use_default_sinks(active_sinks)

__all__ = ["SINKS_ENV", "Configuration", "active_sinks", "configure", "resolve_sinks"]
