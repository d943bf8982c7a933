"""The exception a plain LiteLLM call raises when the connection drops mid-reply.

streamll streams a request that DSPy sends as an ordinary call. When the
connection drops while the reply is read, LiteLLM's stream reader raises its own
mid-stream error (``MidStreamFallbackError``, or ``APIConnectionError`` on older
releases), while the same drop under the ordinary call goes through the
provider handler, which wraps the transport error in the provider's error class,
and ``litellm.exception_type``, which maps that (``InternalServerError`` for an
OpenAI-compatible provider). Users and DSPy branch on those types, so the
streamed call's failure is rebuilt the same way, with LiteLLM's own functions,
from the same transport error.
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn, cast

logger = logging.getLogger("streamll")

_CHAIN_LIMIT = 8


def _transport_error(exc: BaseException) -> BaseException | None:
    """The connection error under LiteLLM's own wrapping of ``exc`` (None when ``exc`` is something else)."""
    import httpx
    import openai

    current: BaseException | None = exc
    for _ in range(_CHAIN_LIMIT):
        if current is None:
            return None
        if isinstance(current, (httpx.TransportError, openai.APIConnectionError)):
            return current
        if not type(current).__module__.startswith("litellm"):
            return None
        current = current.__context__ or current.__cause__
    return None


def plain_failure(exc: Exception, request: dict[str, Any]) -> Exception:
    """What the plain call raises where reading the streamed reply to ``request`` failed with ``exc``.

    ``exc`` itself unless it wraps a dropped connection (or LiteLLM cannot say).
    The result's ``__context__`` is the provider's error, whose ``__context__``
    is the transport error, as on the plain call.
    """
    raw = _transport_error(exc)
    if raw is None:
        return exc
    try:
        import litellm
        from litellm.types.utils import LlmProviders
        from litellm.utils import ProviderConfigManager

        model, provider, _, _ = litellm.get_llm_provider(
            model=request["model"],
            custom_llm_provider=request.get("custom_llm_provider"),
            api_base=request.get("api_base"),
        )
        config = ProviderConfigManager.get_provider_chat_config(model=model, provider=LlmProviders(provider))
        if config is None:
            return exc
        wrapped = config.get_error_class(  # as the provider handler's ``except Exception`` does
            error_message=getattr(raw, "text", str(raw)),
            status_code=getattr(raw, "status_code", 500),
            headers=cast(Any, getattr(raw, "headers", None)),  # None, as the handler passes it
        )
        wrapped.__context__ = raw
        try:
            mapped = litellm.exception_type(model=model, custom_llm_provider=provider, original_exception=wrapped)
        except Exception as raised:  # exception_type raises the mapped exception
            mapped = raised
    except Exception:
        logger.debug("streamll: could not map a mid-stream LiteLLM error", exc_info=True)
        return exc
    mapped.__cause__, mapped.__context__, mapped.__suppress_context__ = None, wrapped, False
    mapped.__traceback__ = None
    return mapped


def raise_keeping_context(failure: BaseException) -> NoReturn:
    """Raise ``failure`` with the ``__context__`` it has (a plain ``raise`` in an except block replaces it)."""
    context = failure.__context__
    try:
        raise failure
    except BaseException:
        failure.__context__ = context
        raise


__all__ = ["plain_failure", "raise_keeping_context"]
