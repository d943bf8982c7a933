"""HTTP and SSE: the threading server and the handler serving ``/v1/chat/completions`` and ``/v1/models``."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from streamll.testing.lm_server.prompt import ChatRequest, message_text
from streamll.testing.lm_server.reasoning import reasoning_deltas, reasoning_text
from streamll.testing.lm_server.reply import reply_text, tokenize
from streamll.testing.lm_server.state import Knobs, ServerState
from streamll.testing.lm_server.tool_calls import send as send_tool_calls
from streamll.testing.lm_server.tool_calls import tool_calls_for
from streamll.testing.lm_server.wire import Completion, error_body

__all__ = ["LMHTTPServer"]


class LMHTTPServer(ThreadingHTTPServer):
    """Threading HTTP server answering from one ``ServerState``."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024
    """Listen backlog: a burst of first calls (many DSPy threads starting at once) is queued, not reset."""

    def __init__(self, address: tuple[str, int], state: ServerState) -> None:
        """Bind ``address``; requests read and record through ``state``."""
        self.state = state
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore client disconnects; report anything else on stderr."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, OSError)):
            return
        super().handle_error(request, client_address)


class _Disconnect(Exception):
    """Raised inside the handler to drop the connection abruptly."""


def _completion(request: ChatRequest, content: str, knobs: Knobs, completion_id: str) -> Completion:
    """Tokenize ``content``, apply the token limits, and count usage."""
    tokens = tokenize(content)
    limits = [knobs.max_tokens, request.body.get("max_tokens"), request.body.get("max_completion_tokens")]
    numeric = [int(v) for v in limits if isinstance(v, int) and not isinstance(v, bool)]
    limit = min(numeric) if numeric else None
    finish_reason = knobs.finish_reason
    if limit is not None and len(tokens) > limit:
        tokens = tokens[: max(int(limit), 0)]
        finish_reason = "length"
    reasoning = reasoning_text(knobs.reasoning_content, request)
    prompt_tokens = sum(len(tokenize(message_text(m))) for m in request.messages)
    completion_tokens = len(tokens) + len(tokenize(reasoning or ""))
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    usage["total_tokens"] = prompt_tokens + completion_tokens
    return Completion(completion_id, request.model or "offline", tokens, finish_reason, usage, reasoning=reasoning)


class _Handler(BaseHTTPRequestHandler):
    """Request handler implementing the OpenAI chat-completions surface."""

    protocol_version = "HTTP/1.1"
    server_version = "OfflineLM/1.0"
    server: LMHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the server quiet."""

    def setup(self) -> None:
        """Register the connection so ``stop`` can close it."""
        super().setup()
        self.server.state.track(self.connection, add=True)

    def finish(self) -> None:
        """Unregister the connection."""
        try:
            super().finish()
        finally:
            self.server.state.track(self.connection, add=False)

    # -- plumbing -----------------------------------------------------------------

    def _read_body(self) -> bytes:
        """Read the request body (Content-Length or chunked)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, status: int, payload: Any) -> None:
        """Send a complete JSON response with Content-Length."""
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error_json(self, status: int, message: str) -> None:
        """Send an OpenAI-style error body."""
        self._send_json(status, error_body(status, message))

    def _write_chunk(self, data: bytes) -> None:
        """Write one HTTP/1.1 chunk."""
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _write_event(self, payload: Any) -> None:
        """Write one server-sent event carrying ``payload`` (a JSON object or ``[DONE]``)."""
        text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        self._write_chunk(f"data: {text}\n\n".encode())

    def _drop_connection(self) -> None:
        """Close the socket without finishing the response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- routes -------------------------------------------------------------------

    def do_GET(self) -> None:
        """Serve ``/v1/models`` and a health probe."""
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            models = self.server.state.models()
            data = [{"id": name, "object": "model", "created": 0, "owned_by": "offline"} for name in models]
            self._send_json(200, {"object": "list", "data": data})
        elif path in ("", "/health", "/v1"):
            self._send_json(200, {"status": "ok"})
        else:
            self._send_error_json(404, f"Unknown path: {self.path}")

    def do_POST(self) -> None:
        """Serve ``/v1/chat/completions``."""
        path = self.path.split("?", 1)[0].rstrip("/")
        raw = self._read_body()
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._send_error_json(404, f"Unknown path: {self.path}")
            return
        body = self._json_body(raw)
        if body is None:
            return
        state = self.server.state
        state.record_request(body)
        if not isinstance(body.get("messages"), list):
            self._send_error_json(400, "'messages' is a required array.")
            return
        knobs = state.take_knobs()
        if knobs.fail_status is not None:
            status = int(knobs.fail_status)
            self._send_error_json(
                status, knobs.fail_message or f"Offline LM server configured to fail with HTTP {status}."
            )
            return
        request = ChatRequest.parse(body, dict(self.headers.items()))
        try:
            if (calls := tool_calls_for(request, knobs)) is not None:  # native tool calls
                send_tool_calls(self, request, calls, state.next_id(), knobs)
                return
            content = reply_text(request, knobs)
        except Exception as exc:  # a failing responder becomes an HTTP 500
            self._send_error_json(500, f"Responder failed: {type(exc).__name__}: {exc}")
            return
        completion = _completion(request, content, knobs, state.next_id())
        if request.stream:
            self._stream(request, completion, knobs)
        else:
            self._complete(request, completion, knobs)

    def _json_body(self, raw: bytes) -> dict[str, Any] | None:
        """Decode the request body as a JSON object, or answer 400 and return None."""
        try:
            body = json.loads(raw.decode("utf-8") or "null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._send_error_json(400, f"Request body is not valid JSON: {exc}")
            return None
        if not isinstance(body, dict):
            self._send_error_json(400, "Request body must be a JSON object.")
            return None
        return body

    def _complete(self, request: ChatRequest, completion: Completion, knobs: Knobs) -> None:
        """Send a non-streaming ``chat.completion`` object (half of it, then drop, under ``disconnect_after``)."""
        n = request.body.get("n") or 1
        payload = completion.body(n if isinstance(n, int) and 1 <= n <= 16 else 1)
        if knobs.disconnect_after is None:
            self._send_json(200, payload)
            return
        data = json.dumps(payload).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self._drop_connection()

    def _stream(self, request: ChatRequest, completion: Completion, knobs: Knobs) -> None:
        """Send a ``chat.completion.chunk`` SSE stream, recording how it ended."""
        tokens = completion.tokens
        pieces = ["".join(tokens)] if knobs.one_chunk and tokens else tokens
        record = self.server.state.record_stream(len(pieces))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        delay = float(knobs.token_delay or 0.0)
        try:
            self._write_event(completion.chunk({"role": "assistant", "content": ""}))
            for delta in reasoning_deltas(completion.reasoning, tokenize):
                self._write_event(completion.chunk(delta))
            for count, piece in enumerate(pieces):
                if knobs.disconnect_after is not None and count >= knobs.disconnect_after:
                    raise _Disconnect
                if delay > 0:
                    time.sleep(delay)
                self._write_event(completion.chunk({"content": piece}))
                record.sent += 1
            if knobs.disconnect_after is not None:
                raise _Disconnect
            if delay > 0:
                time.sleep(delay)
            self._write_event(completion.chunk({}, completion.finish_reason))
            if request.include_usage:
                self._write_event(completion.usage_chunk())
            self._write_event("[DONE]")
            self._write_chunk(b"")
            record.finished = True
        except _Disconnect:
            record.dropped = True
            self._drop_connection()
        except OSError:
            record.client_closed = True
            self.close_connection = True
