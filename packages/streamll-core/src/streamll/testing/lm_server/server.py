"""``OfflineLMServer``: start, stop and configure the offline chat-completions server."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streamll.testing.lm_server.handler import LMHTTPServer
from streamll.testing.lm_server.prompt import ChatRequest
from streamll.testing.lm_server.state import Knobs, ServerState, StreamRecord
from streamll.testing.lm_server.values import field_values

if TYPE_CHECKING:
    import dspy

__all__ = ["OfflineLMServer"]


class _Knob:
    """A reply knob exposed as a plain attribute of ``OfflineLMServer`` (reads and writes take the lock)."""

    def __set_name__(self, owner: type, name: str) -> None:
        """Remember the knob's name."""
        self.name = name

    def __get__(self, server: OfflineLMServer | None, owner: type | None = None) -> Any:
        """The knob's current value."""
        if server is None:
            return self
        with server._state.lock:
            return getattr(server._state.knobs, self.name)

    def __set__(self, server: OfflineLMServer, value: Any) -> None:
        """Set the knob for following requests."""
        server._state.configure(**{self.name: value})


class OfflineLMServer:
    """Offline OpenAI-compatible streaming chat-completions server.

    Reply knobs (``answers``, ``responder``, ``one_chunk``, ``finish_reason``,
    ``max_tokens``, ``fail_status``, ``fail_times``, ``fail_message``,
    ``disconnect_after``, ``disconnect_times``, ``token_delay``, ``raw_reply``, ``reasoning_content``; see
    ``streamll.testing.lm_server.Knobs``) are plain attributes that may be set at any
    time, directly or through ``configure``; each request reads them once when it arrives.
    """

    answers = _Knob()
    responder = _Knob()
    one_chunk = _Knob()
    finish_reason = _Knob()
    max_tokens = _Knob()
    fail_status = _Knob()
    fail_times = _Knob()
    fail_message = _Knob()
    disconnect_after = _Knob()
    disconnect_times = _Knob()
    token_delay = _Knob()
    raw_reply = _Knob()
    reasoning_content = _Knob()

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        answers: dict[str, Any] | None = None,
        responder: Callable[[ChatRequest], dict[str, Any]] | None = None,
        **knobs: Any,
    ) -> None:
        """Create a stopped server; ``knobs`` are passed to ``configure``."""
        self.host = host
        self._requested_port = port
        self._state = ServerState()
        self._server: LMHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.configure(answers=answers, responder=responder, **knobs)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request body received, in arrival order."""
        return self._state.requests

    @property
    def streams(self) -> list[StreamRecord]:
        """One record per streamed reply, in arrival order (what was sent, how it ended)."""
        return self._state.streams

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> OfflineLMServer:
        """Bind the socket and serve on a daemon thread; returns ``self``."""
        if self._server is not None:
            return self
        server = LMHTTPServer((self.host, self._requested_port), self._state)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"offline-lm-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open client connection."""
        server, thread = self._server, self._thread
        self._server = None
        self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        for connection in self._state.open_connections():
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> OfflineLMServer:
        """Start the server."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop the server."""
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound TCP port (the requested port before ``start``)."""
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        """OpenAI-style API base, ``http://HOST:PORT/v1``."""
        return f"{self.base_url}/v1"

    def lm(self, model: str = "offline", **kwargs: Any) -> dspy.LM:
        """Return a ``dspy.LM`` pointed at this server (``openai/<model>``, no cache, no retries).

        Any keyword argument (``engine="litellm"``, ``cache=True``, ...) overrides the defaults.
        DSPy releases before 3.4 import LiteLLM, which fetches its model cost map online unless
        ``LITELLM_LOCAL_MODEL_COST_MAP=True`` is set in the environment before ``dspy`` is imported.
        """
        if self._server is None:
            raise RuntimeError("OfflineLMServer is not running; call start() or use it as a context manager")
        import dspy

        options: dict[str, Any] = {"api_base": self.api_base, "api_key": "offline", "cache": False, "num_retries": 0}
        options.update(kwargs)
        name = model if model.startswith("openai/") else f"openai/{model}"
        return dspy.LM(name, **options)

    # -- knobs --------------------------------------------------------------------

    def configure(self, **knobs: Any) -> OfflineLMServer:
        """Set reply knobs for following requests; unknown names raise ``TypeError``. Returns ``self``."""
        self._state.configure(**knobs)
        return self

    def reset(self) -> OfflineLMServer:
        """Restore every knob to its default and forget recorded requests. Returns ``self``."""
        self._state.reset()
        return self

    def knobs(self) -> dict[str, Any]:
        """Return a snapshot of the current reply knobs."""
        return self._state.snapshot().as_dict()

    # -- requests -----------------------------------------------------------------

    @property
    def last_request(self) -> dict[str, Any] | None:
        """The most recent request body, if any."""
        with self._state.lock:
            return self.requests[-1] if self.requests else None

    def parsed_requests(self) -> list[ChatRequest]:
        """Every recorded request body parsed into a ``ChatRequest``."""
        with self._state.lock:
            bodies = list(self.requests)
        return [ChatRequest.parse(body) for body in bodies]

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` requests were received; returns False on timeout."""
        return self._state.wait_for_requests(count, timeout)

    def models(self) -> list[str]:
        """Model names reported by ``GET /v1/models`` (``offline`` plus every model requested)."""
        return self._state.models()

    def reply_values(self, request: ChatRequest, knobs: Knobs | None = None) -> dict[str, Any]:
        """Return the field values for ``request``: responder, then answers, then defaults."""
        knobs = knobs if knobs is not None else self._state.snapshot()
        return field_values(request, knobs.answers or {}, knobs.responder)

    def __repr__(self) -> str:
        """Short description with address and state."""
        state = "running" if self.running else "stopped"
        return f"OfflineLMServer({self.api_base!r}, {state}, requests={len(self.requests)})"
