"""``ConstrainedLM``: a ``dspy.LM`` whose every request carries the reply-format constraint.

Used with ``LocalModelServer``: a small local model answers in the format of whichever
adapter built the prompt (ChatAdapter, JSONAdapter or XMLAdapter, also after a fallback),
because each call adds a grammar or a JSON schema derived from that prompt.
"""

from __future__ import annotations

from typing import Any

import dspy

from streamll.testing.constraints import DEFAULT_MAX_FIELD_CHARS, request_constraint

__all__ = ["ConstrainedLM"]


class ConstrainedLM(dspy.LM):
    """``dspy.LM`` adding a ``grammar`` / ``response_format`` constraint to each chat request."""

    def __init__(self, model: str, *, max_field_chars: int = DEFAULT_MAX_FIELD_CHARS, **kwargs: Any) -> None:
        """``max_field_chars`` bounds each free-text output field; other arguments are ``dspy.LM``'s."""
        super().__init__(model, **kwargs)
        self.max_field_chars = max_field_chars

    def _constrained(self, prompt: Any, messages: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        if prompt is not None or not isinstance(messages, list) or "grammar" in kwargs:
            return kwargs
        return {**kwargs, **request_constraint(messages, kwargs, self.max_field_chars)}

    def __call__(self, prompt: Any = None, *, messages: Any = None, **kwargs: Any) -> Any:
        """Call the model with the constraint matching the prompt's adapter."""
        return super().__call__(prompt, messages=messages, **self._constrained(prompt, messages, kwargs))

    async def acall(self, prompt: Any = None, *, messages: Any = None, **kwargs: Any) -> Any:
        """Async ``__call__``."""
        return await super().acall(prompt, messages=messages, **self._constrained(prompt, messages, kwargs))
