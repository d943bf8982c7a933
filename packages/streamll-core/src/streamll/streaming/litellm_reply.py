"""The reply a plain LiteLLM call returns, assembled from the chunks of a streamed one."""

from __future__ import annotations

import contextlib
from typing import Any


def assemble(chunks: list[Any]) -> Any:
    """The reply a non-streamed call returns, built from the chunks (``litellm.stream_chunk_builder``).

    Reading a stream, LiteLLM derives ``completion_tokens_details`` (text
    tokens, and reasoning tokens counted from ``reasoning_content`` with its own
    tokenizer) that a plain reply without details from the provider does not
    have; those derived details are dropped so DSPy records the same usage
    either way. So is the ``cost`` LiteLLM adds to a stream's usage for a model
    it has prices for (a plain reply has that cost in ``_hidden_params`` only).
    """
    import litellm

    raw = litellm.stream_chunk_builder(chunks)
    usage: Any = getattr(raw, "usage", None)
    details = getattr(usage, "completion_tokens_details", None)
    if details is not None and _derived_details(details, getattr(usage, "completion_tokens", None)):
        with contextlib.suppress(Exception):  # a frozen usage object keeps LiteLLM's
            usage.completion_tokens_details = None
    _plain_cost(chunks, usage)
    return raw


def _plain_cost(chunks: list[Any], usage: Any) -> None:
    """Undo the ``usage.cost`` LiteLLM writes into a stream's usage from its price list.

    A plain reply's usage carries ``cost`` only when the provider reported one;
    reading a stream, LiteLLM stamps its own bill there (for a model it knows
    the price of) and keeps the provider's figure as ``upstream_usage_cost``.
    """
    if usage is None:
        return
    for chunk in reversed(chunks):
        hidden = getattr(chunk, "_hidden_params", None)
        if getattr(chunk, "usage", None) is None or not isinstance(hidden, dict):
            continue
        if "upstream_usage_cost" not in hidden:
            return
        upstream = hidden["upstream_usage_cost"]
        with contextlib.suppress(Exception):
            if upstream is None:
                delattr(usage, "cost")
            else:
                usage.cost = upstream
        return


def _derived_details(details: Any, completion_tokens: Any) -> bool:
    """True for details LiteLLM made up from the text (text + reasoning tokens = completion tokens, nothing else)."""
    values = details.model_dump() if hasattr(details, "model_dump") else dict(vars(details))
    counted = {"text_tokens": completion_tokens, "reasoning_tokens": 0}
    if all(value is None or (key in counted and value == counted[key]) for key, value in values.items()):
        return True  # no reasoning: all text
    text, reasoning = values.get("text_tokens"), values.get("reasoning_tokens") or 0
    others = [value for key, value in values.items() if key not in ("text_tokens", "reasoning_tokens")]
    return text is not None and text + reasoning == completion_tokens and all(value is None for value in others)


__all__ = ["assemble"]
