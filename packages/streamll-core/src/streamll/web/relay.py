"""One execution as a sequence of Server-Sent Events: ordering, resume and the end of the stream.

The relay keeps no state between connections: every connection reads the
execution's log from the broker, skips what the client already has (SSE
``id`` = the event's ``sequence``; ``Last-Event-ID`` or ``?after=N`` resumes
after N), drops the repeats a retried broker write can leave, and stops after
the execution's outermost end or error event.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from sse_starlette import ServerSentEvent

from streamll.executions import ExecutionLog, StoredEvent
from streamll.web.aisdk import DONE, REASONING_FIELDS, UIMessageStream


async def execution_events(log: ExecutionLog, execution_id: str, after: int = -1) -> AsyncIterator[StoredEvent]:
    """The execution's events with ``sequence > after``, each once, ending after its outermost end / error."""
    last = after
    bodies = log.bodies(execution_id)
    try:
        async for body in bodies:
            event = StoredEvent.parse(body)
            if event is None or event.sequence <= last:
                continue
            last = event.sequence
            yield event
            if event.closes_execution:
                return
    finally:
        await bodies.aclose()  # type: ignore[attr-defined]


async def json_stream(log: ExecutionLog, execution_id: str, after: int) -> AsyncIterator[ServerSentEvent]:
    """streamll's own format: each event's wire JSON as ``data``, its sequence as ``id``."""
    async for event in execution_events(log, execution_id, after):
        yield ServerSentEvent(data=event.body.decode("utf-8"), id=str(event.sequence))


async def ai_sdk_stream(
    log: ExecutionLog, execution_id: str, after: int, reasoning_fields: frozenset[str] = REASONING_FIELDS
) -> AsyncIterator[ServerSentEvent]:
    """The AI SDK UI message stream: chunks as ``data``; the last chunk of each event carries its sequence as ``id``."""
    converter = UIMessageStream(execution_id, reasoning_fields)
    async for event in execution_events(log, execution_id, after):
        chunks = converter.chunks(event)
        for position, chunk in enumerate(chunks):
            last = position == len(chunks) - 1
            yield ServerSentEvent(
                data=json.dumps(chunk, separators=(",", ":")), id=str(event.sequence) if last else None
            )
        if event.closes_execution:
            yield ServerSentEvent(data=DONE)


__all__ = ["ai_sdk_stream", "execution_events", "json_stream"]
