"""Status messages: what ``dspy.streamify``'s ``StatusMessageProvider`` would say, as ``status`` events.

``@streamll.instrument(status_messages=...)`` chooses the provider: ``True``
(the default) is DSPy's own ``StatusMessageProvider`` ("Calling tool add...",
"Tool calling finished! ..."; nothing for modules and LM calls), an instance of
a subclass gives its own texts, ``False`` turns status events off. The provider
is asked at tool start / end, at the start / end of each predictor and
instrumented module, and at each LM call's start / end; a message it returns
becomes a ``status`` event with ``data = {"message", "stage", ...}``.
"""

from __future__ import annotations

import logging
from typing import Any

from streamll.core.emitter import dispatch, make_event

logger = logging.getLogger("streamll")

STAGES = ("tool_start", "tool_end", "module_start", "module_end", "lm_start", "lm_end")
"""Values of a status event's ``data["stage"]`` (the ``StatusMessageProvider`` method it came from)."""

_default: Any = None


def provider_for(module: Any) -> Any:
    """The status message provider of an instrumented module (None when status messages are off)."""
    global _default
    provider = getattr(type(module), "_streamll_status_messages", True)
    if provider is True:
        if _default is None:
            from dspy.streaming.messages import StatusMessageProvider

            _default = StatusMessageProvider()
        return _default
    return provider or None


def message(provider: Any, stage: str, *args: Any) -> str | None:
    """The provider's text for ``stage`` (its ``<stage>_status_message`` method), or None; never raises."""
    if provider is None:
        return None
    try:
        text = getattr(provider, f"{stage}_status_message")(*args)
    except Exception:
        logger.exception("streamll: the status message provider failed")
        return None
    return text if isinstance(text, str) and text else None


def emit_status(text: str | None, stage: str, *, module_name: str | None = None, **extra: Any) -> None:
    """Emit a ``status`` event in the current execution and span when there is a text."""
    if not text:
        return
    try:
        event, execution = make_event("status", {"message": text, "stage": stage, **extra}, module_name=module_name)
        dispatch(event, execution)
    except Exception:
        logger.exception("streamll: could not emit a status event")


def report(provider: Any, stage: str, *args: Any, module_name: str | None = None) -> None:
    """Ask the provider about ``stage`` and emit what it says."""
    if provider is not None:
        emit_status(message(provider, stage, *args), stage, module_name=module_name)


__all__ = ["STAGES", "emit_status", "message", "provider_for", "report"]
