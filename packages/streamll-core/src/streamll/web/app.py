"""The relay's ASGI application (Starlette): SSE per execution, the executions list, cancel, the live page."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from streamll.core.runs import EXECUTION_ID_PATTERN
from streamll.executions import ExecutionLog, open_execution_log
from streamll.web import aisdk
from streamll.web.hub import Hub
from streamll.web.relay import ai_sdk_stream, json_stream
from streamll.web.tokens import ANY_EXECUTION, verify

EXECUTION_ID = EXECUTION_ID_PATTERN
"""Execution ids the relay accepts (what streamll generates: 32 hex characters; caller-chosen ids alike)."""
FORMATS = ("json", "ai-sdk")
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DEFAULT_HEARTBEAT = 15.0


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers={"Cache-Control": "no-store"})


def _after(request: Request) -> int | None:
    """The sequence to resume after: ``Last-Event-ID`` wins over ``?after=``; -1 from the start; None if invalid."""
    raw = request.headers.get("last-event-id") or request.query_params.get("after")
    if raw is None or raw == "":
        return -1
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= -1 else None


class Relay:
    """Request handlers around one :class:`ExecutionLog`."""

    def __init__(self, log: ExecutionLog, secret: str | bytes | None, heartbeat: float) -> None:
        self.log = log
        self.hub = Hub(log)
        self.secret = secret
        self.heartbeat = heartbeat

    def _refused(self, request: Request, execution_id: str) -> JSONResponse | None:
        if self.secret is None:
            return None
        if verify(request.query_params.get("token"), execution_id, self.secret):
            return None
        return _error(403, "missing, expired or wrong token for this execution (?token=)")

    def _execution_id(self, request: Request) -> str | JSONResponse:
        execution_id = str(request.path_params["execution_id"])
        if not EXECUTION_ID.match(execution_id):
            return _error(400, "execution_id must be 1-128 letters, digits, '_' or '-'")
        return execution_id

    async def events(self, request: Request) -> Response:
        """``GET /executions/{id}/events``: the execution as SSE (``?format=json|ai-sdk``, ``?after=N``)."""
        execution_id = self._execution_id(request)
        if isinstance(execution_id, JSONResponse):
            return execution_id
        if refused := self._refused(request, execution_id):
            return refused
        after = _after(request)
        if after is None:
            return _error(400, "Last-Event-ID / ?after= must be an event sequence number (an integer >= -1)")
        fmt = request.query_params.get("format", "json")
        if fmt not in FORMATS:
            return _error(400, f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        headers = dict(STREAM_HEADERS)
        if fmt == "ai-sdk":
            headers[aisdk.HEADER[0]] = aisdk.HEADER[1]
            content: Any = ai_sdk_stream(self.hub, execution_id, after, self._reasoning_fields(request))
        else:
            content = json_stream(self.hub, execution_id, after)
        return EventSourceResponse(content, headers=headers, ping=self.heartbeat)

    @staticmethod
    def _reasoning_fields(request: Request) -> frozenset[str]:
        raw = request.query_params.get("reasoning_fields")
        if raw is None:
            return aisdk.REASONING_FIELDS
        return frozenset(name.strip() for name in raw.split(",") if name.strip())

    async def executions(self, request: Request) -> Response:
        """``GET /executions``: recent executions, newest first (needs a ``*`` token when a secret is set)."""
        if refused := self._refused(request, ANY_EXECUTION):
            return refused
        try:
            limit = max(1, min(500, int(request.query_params.get("limit", "50"))))
        except ValueError:
            return _error(400, "limit must be an integer")
        summaries = await self.log.recent(limit)
        return JSONResponse(
            {"executions": [summary.as_dict() for summary in summaries]}, headers={"Cache-Control": "no-store"}
        )

    async def cancel(self, request: Request) -> Response:
        """``POST /executions/{id}/cancel``: ask the producer to stop (202), 404 when no producer listens."""
        execution_id = self._execution_id(request)
        if isinstance(execution_id, JSONResponse):
            return execution_id
        if refused := self._refused(request, execution_id):
            return refused
        try:
            heard = await self.log.request_cancel(execution_id)
        except NotImplementedError as exc:
            return _error(501, str(exc))
        if not heard:
            return _error(404, "no running producer is listening for cancellation of this execution")
        return JSONResponse({"execution_id": execution_id, "cancel_requested": True}, status_code=202)

    async def page(self, request: Request) -> Response:
        """``GET /``: the live page."""
        html = resources.files("streamll.web").joinpath("page.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


def create_app(
    source: str | ExecutionLog, *, secret: str | bytes | None = None, heartbeat: float = DEFAULT_HEARTBEAT
) -> Starlette:
    """The relay as an ASGI app, reading executions from ``source``.

    ``source`` is the transport URL the producer's sink writes to (for Redis
    with ``?per_execution=true``; see docs/web.md) or an :class:`ExecutionLog`.
    With ``secret``, every request needs ``?token=`` from
    :func:`streamll.web.sign`. ``heartbeat``: seconds between SSE comment
    lines on an idle stream. Mount it in FastAPI with ``app.mount("/streamll", create_app(url))``.
    """
    log = open_execution_log(source) if isinstance(source, str) else source
    if heartbeat <= 0:
        raise ValueError(f"heartbeat must be > 0 seconds, got {heartbeat}")
    relay = Relay(log, secret, heartbeat)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await log.open()
        try:
            yield
        finally:
            await log.aclose()

    routes = [
        Route("/", relay.page, methods=["GET"]),
        Route("/executions", relay.executions, methods=["GET"]),
        Route("/executions/{execution_id}/events", relay.events, methods=["GET"]),
        Route("/executions/{execution_id}/cancel", relay.cancel, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.relay = relay
    return app


__all__ = ["EXECUTION_ID", "FORMATS", "STREAM_HEADERS", "create_app"]
