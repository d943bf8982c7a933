"""The OpenAI chat-completions wire format: completion, chunk, usage and error bodies, SSE decoding."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from streamll.testing.lm_server.reasoning import add_to_message

__all__ = ["Completion", "error_body", "iter_sse_events"]

_ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("not_found_error", "model_not_found"),
    408: ("timeout_error", "timeout"),
    409: ("conflict_error", "conflict"),
    422: ("invalid_request_error", "unprocessable_entity"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", "internal_error"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "gateway_timeout"),
}


def error_body(status: int, message: str) -> dict[str, Any]:
    """An OpenAI-style error body for HTTP ``status``."""
    kind, code = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", str(status)))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


@dataclass
class Completion:
    """One reply: its id, model, content tokens, finish reason and usage, rendered as either wire shape."""

    completion_id: str
    model: str
    tokens: list[str]
    finish_reason: str
    usage: dict[str, int]
    created: int = field(default_factory=lambda: int(time.time()))
    reasoning: str | None = None
    """The reasoning a reasoning model sends beside the content (``reasoning_content``)."""

    def body(self, choices: int = 1) -> dict[str, Any]:
        """The non-streaming ``chat.completion`` object with ``choices`` identical choices."""
        message = add_to_message(
            {"role": "assistant", "content": "".join(self.tokens), "refusal": None}, self.reasoning
        )
        return {
            "id": self.completion_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {"index": index, "message": message, "logprobs": None, "finish_reason": self.finish_reason}
                for index in range(choices)
            ],
            "usage": self.usage,
        }

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        """One ``chat.completion.chunk`` object."""
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def usage_chunk(self) -> dict[str, Any]:
        """The final chunk carrying usage and no choices (sent when the client asks for it)."""
        return {**self.chunk({}), "choices": [], "usage": self.usage}


def iter_sse_events(lines: Iterator[bytes]) -> Iterator[Any]:
    """Decode ``data:`` events from an SSE byte-line iterator (``[DONE]`` is yielded as the string)."""
    for raw in lines:
        line = raw.decode("utf-8").strip()
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        yield data if data == "[DONE]" else json.loads(data)
