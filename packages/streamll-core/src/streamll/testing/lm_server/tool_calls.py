"""Native tool calls for the offline LM server, sent the way OpenAI-compatible servers send them.

A request that offers ``tools`` (DSPy's native function calling) is answered
with tool calls when the responder (or the ``answers`` knob) gives a
``"tool_calls"`` value: a list of ``{"name": ..., "arguments": {...}}`` (an
``"id"`` is optional). Streamed, each call starts with a chunk carrying its
``index``, ``id`` and function ``name`` (arguments ``""``), then its arguments'
JSON text in word-sized fragments; the last chunk has ``finish_reason``
``"tool_calls"``. Unstreamed, the message has ``content: null`` and the calls.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from streamll.testing.lm_server.prompt import message_text
from streamll.testing.lm_server.reply import tokenize

TOOL_CALLS_KEY = "tool_calls"
"""The responder / ``answers`` key whose list becomes native tool calls (requests with ``tools`` only)."""
FINISH_REASON = "tool_calls"


@dataclass
class ToolCallReply:
    """One tool call the server will send."""

    id: str
    name: str
    arguments: str
    """The arguments as JSON text, as the OpenAI wire carries them."""

    def fragments(self) -> list[str]:
        """The arguments' text in word-sized pieces (what a streaming server sends one by one)."""
        return tokenize(self.arguments) or [""]

    def as_message_call(self) -> dict[str, Any]:
        """The call as an entry of an assistant message's ``tool_calls`` (a non-streaming reply)."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


def _knob(knobs: Any, name: str) -> Any:
    return knobs.get(name) if isinstance(knobs, dict) else getattr(knobs, name, None)


def _call_id(index: int, name: str, arguments: str) -> str:
    """A call id that is the same for the same reply (so two runs of a program see the same ids)."""
    digest = hashlib.sha256(f"{index}\0{name}\0{arguments}".encode()).hexdigest()
    return f"call_{digest[:24]}"


def tool_calls_for(request: Any, knobs: Any) -> list[ToolCallReply] | None:
    """The tool calls to send for ``request``, or None for an ordinary text reply."""
    if not request.body.get("tools"):
        return None
    responder = _knob(knobs, "responder")
    produced = responder(request) if responder is not None else None
    calls = produced.get(TOOL_CALLS_KEY) if isinstance(produced, dict) else None
    if calls is None:
        calls = (_knob(knobs, "answers") or {}).get(TOOL_CALLS_KEY)
    if not calls:
        return None
    replies = []
    for index, call in enumerate(calls):
        arguments = call.get("arguments", call.get("args", {}))
        text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        call_id = str(call.get("id") or _call_id(index, str(call["name"]), text))
        replies.append(ToolCallReply(call_id, str(call["name"]), text))
    return replies


def completion_body(
    calls: list[ToolCallReply], completion_id: str, model: str, usage: dict[str, int]
) -> dict[str, Any]:
    """A ``chat.completion`` whose message is the tool calls."""
    message = {"role": "assistant", "content": None, "tool_calls": [call.as_message_call() for call in calls]}
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": FINISH_REASON}],
        "usage": usage,
    }


def stream_deltas(calls: list[ToolCallReply]) -> list[dict[str, Any]]:
    """The ``delta`` of every chunk after the role chunk: per call its head, then its argument fragments."""
    deltas: list[dict[str, Any]] = []
    for index, call in enumerate(calls):
        head = {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        deltas.append({"tool_calls": [head]})
        for piece in call.fragments():
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    return deltas


def send(handler: Any, request: Any, calls: list[ToolCallReply], completion_id: str, knobs: Any) -> None:
    """Answer ``request`` on ``handler`` with the tool calls (streamed when the request asks for it).

    ``token_delay`` applies before each streamed chunk, as for text replies.
    """
    model = request.model or "offline"
    delay = float(_knob(knobs, "token_delay") or 0.0)

    prompt_tokens = sum(len(tokenize(message_text(message))) for message in request.messages)
    completion_tokens = sum(len(call.fragments()) for call in calls)
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    usage["total_tokens"] = prompt_tokens + completion_tokens
    if not request.stream:
        handler._send_json(200, completion_body(calls, completion_id, model, usage))
        return
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": None, "choices": [choice]}  # fmt: skip

    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Cache-Control", "no-cache")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    try:
        handler._write_event(chunk({"role": "assistant", "content": None}))
        for delta in stream_deltas(calls):
            if delay > 0:
                time.sleep(delay)
            handler._write_event(chunk(delta))
        handler._write_event(chunk({}, FINISH_REASON))
        if request.include_usage:
            handler._write_event({**chunk({}), "choices": [], "usage": usage})
        handler._write_event("[DONE]")
        handler._write_chunk(b"")
    except OSError:
        handler.close_connection = True


__all__ = ["TOOL_CALLS_KEY", "ToolCallReply", "completion_body", "send", "stream_deltas", "tool_calls_for"]
