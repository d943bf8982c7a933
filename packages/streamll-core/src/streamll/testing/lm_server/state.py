"""The server's state: reply knobs (one dataclass), recorded requests and streams, open connections.

Request handler threads and the test thread share one ``ServerState``; every method takes
its lock, and each request reads a snapshot of the knobs once, when it arrives.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from streamll.testing.lm_server.prompt import ChatRequest

__all__ = ["KNOB_DEFAULTS", "Knobs", "ServerState", "StreamRecord"]


@dataclass
class Knobs:
    """How the server replies; ``OfflineLMServer.configure`` documents each knob."""

    answers: dict[str, Any] = field(default_factory=dict)
    """Field values by output field name (a responder's values win over these)."""
    responder: Callable[[ChatRequest], dict[str, Any]] | None = None
    """Called with each ``ChatRequest``; returns field values (missing fields fall back)."""
    one_chunk: bool = False
    """Stream the whole reply as a single content chunk."""
    finish_reason: str = "stop"
    max_tokens: int | None = None
    """Cut replies to this many tokens (``finish_reason`` becomes ``length``)."""
    fail_status: int | None = None
    """Answer with this HTTP error status instead of a reply."""
    fail_times: int | None = None
    """Limit ``fail_status`` to the next N requests (``None``: every request)."""
    fail_message: str | None = None
    disconnect_after: int | None = None
    """Drop the connection after this many content chunks."""
    disconnect_times: int | None = None
    """Limit ``disconnect_after`` to the next N requests (``None``: every request)."""
    token_delay: float = 0.0
    """Seconds to wait before each streamed chunk."""
    raw_reply: str | None = None
    """Send this text verbatim instead of a formatted reply."""
    reasoning_content: str | Callable[[ChatRequest], str | None] | None = None
    """A reasoning model's thinking, sent beside the reply (a string, or per request); see ``reasoning``."""

    def copy(self) -> Knobs:
        """An independent snapshot (its own ``answers`` dict)."""
        return replace(self, answers=dict(self.answers))

    def as_dict(self) -> dict[str, Any]:
        """The knobs by name (``answers`` copied)."""
        values = {item.name: getattr(self, item.name) for item in fields(self)}
        values["answers"] = dict(self.answers)
        return values

    def take(self) -> Knobs:
        """Snapshot the knobs for one request, consuming one use of ``fail_times`` / ``disconnect_times``.

        ``fail_times=N`` limits ``fail_status`` to the next N requests and
        ``disconnect_times=N`` limits ``disconnect_after`` likewise (a cut that a
        retry recovers from); ``None`` means every request.
        """
        snapshot = self.copy()
        for knob, times in (("fail_status", "fail_times"), ("disconnect_after", "disconnect_times")):
            remaining = getattr(self, times)
            if getattr(snapshot, knob) is None or remaining is None:
                continue
            if remaining <= 0:
                setattr(snapshot, knob, None)
                continue
            setattr(self, times, remaining - 1)
            if remaining == 1:
                setattr(self, knob, None)
                setattr(self, times, None)
        return snapshot


KNOB_DEFAULTS: dict[str, Any] = {**Knobs().as_dict(), "answers": None}
"""Reply knobs and their default values (see ``OfflineLMServer.configure``)."""


@dataclass
class StreamRecord:
    """What the server sent on one streamed reply: content pieces sent of the reply's total, and how it ended."""

    pieces: int
    sent: int = 0
    finished: bool = False
    """True when the whole reply (finish chunk and ``[DONE]``) was written."""
    client_closed: bool = False
    """True when a write failed because the client closed the connection mid-reply."""
    dropped: bool = False
    """True when the ``disconnect_after`` knob cut the reply."""

    @property
    def ended(self) -> bool:
        """The server is done with this stream (finished, cut by the client, or dropped by a knob)."""
        return self.finished or self.client_closed or self.dropped


@dataclass
class ServerState:
    """Knobs, recorded requests and streams, and open connections, behind one lock."""

    knobs: Knobs = field(default_factory=Knobs)
    requests: list[dict[str, Any]] = field(default_factory=list)
    streams: list[StreamRecord] = field(default_factory=list)
    connections: set[socket.socket] = field(default_factory=set)
    lock: threading.Condition = field(default_factory=threading.Condition)
    completions: int = 0

    def configure(self, **knobs: Any) -> None:
        """Set knobs by name; unknown names raise ``TypeError``."""
        unknown = sorted(set(knobs) - set(KNOB_DEFAULTS))
        if unknown:
            raise TypeError(f"Unknown OfflineLMServer knob(s): {', '.join(unknown)}")
        with self.lock:
            for name, value in knobs.items():
                setattr(self.knobs, name, dict(value or {}) if name == "answers" else value)

    def reset(self) -> None:
        """Restore every knob to its default and forget recorded requests and streams."""
        with self.lock:
            self.knobs = Knobs()
            self.requests.clear()
            self.streams.clear()

    def snapshot(self) -> Knobs:
        """A copy of the current knobs."""
        with self.lock:
            return self.knobs.copy()

    def take_knobs(self) -> Knobs:
        """The knobs for one arriving request (see ``Knobs.take``)."""
        with self.lock:
            return self.knobs.take()

    def record_request(self, body: dict[str, Any]) -> None:
        """Append a received request body and wake waiters."""
        with self.lock:
            self.requests.append(body)
            self.lock.notify_all()

    def record_stream(self, pieces: int) -> StreamRecord:
        """Start the record of one streamed reply."""
        record = StreamRecord(pieces)
        with self.lock:
            self.streams.append(record)
        return record

    def next_id(self) -> str:
        """A fresh completion id."""
        with self.lock:
            self.completions += 1
            return f"chatcmpl-offline-{self.completions}"

    def track(self, connection: socket.socket, *, add: bool) -> None:
        """Add or remove an open client connection."""
        with self.lock:
            if add:
                self.connections.add(connection)
            else:
                self.connections.discard(connection)

    def open_connections(self) -> list[socket.socket]:
        """The client connections open now."""
        with self.lock:
            return list(self.connections)

    def wait_for_requests(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` requests were received; False on timeout."""
        with self.lock:
            return self.lock.wait_for(lambda: len(self.requests) >= count, timeout=timeout)

    def models(self) -> list[str]:
        """``offline`` plus every model named in a request, in first-seen order."""
        with self.lock:
            seen = [str(body.get("model")) for body in self.requests if body.get("model")]
        return list(dict.fromkeys(["offline", *seen]))
