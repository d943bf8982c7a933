"""The offline server's native reasoning: ``reasoning_content`` as reasoning models send it.

OpenAI-compatible servers of reasoning models (DeepSeek, vLLM and llama.cpp with
a reasoning parser) put the model's thinking beside the answer: a
``message.reasoning_content`` string in a plain reply, and, in a stream,
``delta.reasoning_content`` pieces (with ``content: null``) before the first
``delta.content`` piece. The ``reasoning_content`` knob of
:class:`~streamll.testing.OfflineLMServer` turns this on: a string (every reply)
or a callable ``request -> str | None`` (per request).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def reasoning_text(knob: Any, request: Any) -> str | None:
    """The reasoning to send with the reply to ``request`` (None: a reply without reasoning)."""
    if knob is None:
        return None
    value = knob(request) if callable(knob) else knob
    return str(value) if value else None


def reasoning_deltas(text: str | None, tokenize: Callable[[str], list[str]]) -> list[dict[str, Any]]:
    """The ``delta`` objects that stream ``text`` as ``reasoning_content`` (DeepSeek / vLLM style)."""
    if not text:
        return []
    return [{"content": None, "reasoning_content": piece} for piece in tokenize(text)]


def add_to_message(message: dict[str, Any], text: str | None) -> dict[str, Any]:
    """A plain reply's ``message`` with ``reasoning_content`` when there is reasoning."""
    if text:
        message["reasoning_content"] = text
    return message


__all__ = ["add_to_message", "reasoning_deltas", "reasoning_text"]
