"""Child process of ``LocalModelServer``: llama.cpp's server (from xllamacpp) behind a small HTTP front.

Run as ``python -m streamll.testing._llama_server MODEL ALIAS THREADS CONTEXT MAX_FIELD_CHARS``
(``MAX_FIELD_CHARS`` 0 sends requests unconstrained). The front answers the OpenAI routes
DSPy uses; each chat request goes to llama.cpp's own request handler with the decoding
constraint of the DSPy adapter that built the prompt (``constraints.request_constraint``),
so any client, DSPy's default engine included, gets replies in a format it parses. The
chunks streamed are llama.cpp's own ``chat.completion.chunk`` objects, one per token.

Prints ``listening <url>`` on stdout once the model is loaded, then serves until SIGTERM /
SIGINT or until its stdin closes (the parent went away).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from streamll.testing.constraints import request_constraint


class _Front(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    llama: Any
    alias: str
    max_field_chars: int


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Front

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: llama.cpp's log already records each request."""

    def _send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path in ("/health", "/v1/health"):
            self._send_json(200, {"status": "ok"})
        elif self.path in ("/models", "/v1/models"):
            self._send_json(200, {"object": "list", "data": [{"id": self.server.alias, "object": "model"}]})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found_error"}})

    def do_POST(self) -> None:
        if self.path not in ("/chat/completions", "/v1/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found_error"}})
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                raise ValueError("the body must be a JSON object with a messages list")
        except ValueError as exc:
            self._send_json(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})
            return
        if self.server.max_field_chars > 0 and "grammar" not in body:
            body.update(request_constraint(body["messages"], body, self.server.max_field_chars))
        if body.get("stream"):
            self._stream(body)
            return
        reply = self.server.llama.handle_chat_completions(body)
        error = reply.get("error") if isinstance(reply, dict) else None
        self._send_json(int(error.get("code", 500)) if isinstance(error, dict) else 200, reply)

    def _stream(self, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        gone = False

        def write(payload: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
            self.wfile.flush()

        def on_chunk(chunk: Any) -> bool:
            nonlocal gone
            try:
                write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            except OSError:
                gone = True
            return gone  # True stops generation: the client went away

        self.server.llama.handle_chat_completions(body, on_chunk)
        if not gone:
            try:
                write(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError:
                pass


def main(argv: list[str]) -> int:
    model_path, alias, threads, context, max_field_chars = argv[0], argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = model_path
    params.model_alias = {alias}  # xllamacpp wants a set of names
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.n_ctx = context
    params.n_parallel = 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    def watch_parent() -> None:
        sys.stdin.read()  # returns when the parent closes the pipe or exits
        stop.set()

    threading.Thread(target=watch_parent, daemon=True).start()
    llama = xllamacpp.Server(params)
    front = _Front(("127.0.0.1", 0), _Handler)
    front.llama, front.alias, front.max_field_chars = llama, alias, max_field_chars
    threading.Thread(target=front.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    print(f"listening http://127.0.0.1:{front.server_address[1]}", flush=True)
    while not stop.wait(0.5):
        pass
    front.shutdown()
    front.server_close()
    del llama  # joins llama.cpp's loop and frees the model
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
