"""Building events in the current context and handing them to sinks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from streamll.core import policy
from streamll.core.context import Execution, context_tags, current_execution, current_span
from streamll.core.events import EVENT_CLASSES, Event, build_event
from streamll.core.records import TokenRecord

logger = logging.getLogger("streamll")

SinkSource = Callable[[], Iterable[Any]]
"""Returns the sinks events go to when their execution names none (``streamll.config`` installs it)."""

_default_sinks: SinkSource = tuple


def use_default_sinks(source: SinkSource) -> None:
    """Install where events without sinks of their own go; ``streamll.config`` calls this on import.

    Core sits below configuration: it is told where events go rather than importing the layer
    that decides it.
    """
    global _default_sinks
    _default_sinks = source


def dispatch(event: Event | TokenRecord, execution: Execution | None = None) -> None:
    """Hand ``event`` to the execution's sinks (or the configured ones); never raises.

    The ``configure(event_filter=..., redact=...)`` rules apply here, once, before any sink sees the event.
    A :class:`~streamll.core.records.TokenRecord` goes to the sinks as it is; each builds its event on its worker.
    """
    if policy._policy is not None:  # filter or redact configured (read directly: no call per token otherwise)
        if (checked := policy.outgoing(event)) is None:
            return
        event = checked
    try:
        sinks = execution.sinks if execution is not None and execution.sinks is not None else _default_sinks()
    except Exception as exc:  # bad STREAMLL_SINKS must not break the user's program
        logger.error("streamll: cannot resolve sinks, event %s not delivered: %s", event.event_type, exc)
        return
    record = type(event) is TokenRecord
    for sink in sinks:
        try:
            sink.enqueue(event if not record or sink.takes_records else event.event())  # type: ignore[union-attr]
        except Exception as exc:
            logger.error("streamll: sink %r refused an event: %s", sink, exc)


def dispatch_record(record: TokenRecord, execution: Execution) -> None:
    """:func:`dispatch` for a token record: the same outcome, with the per-token case (no filter or redact
    configured) done in a few steps; anything else goes through :func:`dispatch`."""
    if policy._policy is not None:
        dispatch(record, execution)
        return
    sinks: Iterable[Any] | None = execution.sinks
    if sinks is None:
        try:
            sinks = _default_sinks()
        except Exception:  # dispatch logs why (bad STREAMLL_SINKS, say)
            dispatch(record, execution)
            return
    for sink in sinks:
        try:
            sink.enqueue(record if sink.takes_records else record.event())
        except Exception as exc:
            logger.error("streamll: sink %r refused an event: %s", sink, exc)


def make_event(
    event_type: str,
    data: dict[str, Any] | None = None,
    *,
    execution: Execution | None = None,
    parent_id: str | None = None,
    cls: type[Event] | None = None,
    tags: dict[str, Any] | None = None,
    **fields: Any,
) -> tuple[Event, Execution]:
    """An event stamped with the current execution, span, sequence and tags.

    Values of their declared types (the per-token case) skip pydantic
    validation; anything else is validated as ``Event(...)`` would.
    """
    if data is not None and not isinstance(data, dict):
        raise TypeError(f"event data must be a dict, not {type(data).__name__}")
    if not isinstance(event_type, str) or not event_type:
        raise TypeError("event_type must be a non-empty string")
    execution = execution or current_execution.get() or Execution()
    if parent_id is None:
        parent_id = current_span.get()
    event_cls = cls or EVENT_CLASSES.get(event_type, Event)
    if tags is None:
        tags = context_tags.get()
    event = build_event(
        event_cls,
        event_type,
        execution.execution_id,
        parent_id,
        execution.next_sequence(),
        dict(data) if data else {},
        dict(tags) if tags else {},
        fields,
    )
    return event, execution


def emit(
    event_type: str,
    data: dict[str, Any] | None = None,
    *,
    module_name: str | None = None,
    operation: str | None = None,
    **fields: Any,
) -> Event:
    """Emit a custom event in the current execution (or a new one) and return it.

    Never raises into the caller: a sink problem is logged and counted.
    """
    event, execution = make_event(event_type, data, module_name=module_name, operation=operation, **fields)
    dispatch(event, execution)
    return event


__all__ = ["SinkSource", "dispatch", "dispatch_record", "emit", "make_event", "use_default_sinks"]
