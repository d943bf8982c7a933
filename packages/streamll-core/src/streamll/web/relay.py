"""One execution as a sequence of Server-Sent Events: the two formats over the process's shared feeds.

The relay keeps no state between connections: every connection follows the
execution's feed (one broker reader per execution per process, see
:mod:`streamll.web.hub`) from after what the client already has (SSE ``id`` =
the event's ``sequence``; ``Last-Event-ID`` or ``?after=N`` resumes after N),
and the stream stops after the execution's outermost end or error event.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from sse_starlette import ServerSentEvent

from streamll.web.aisdk import DONE, REASONING_FIELDS, UIMessageStream
from streamll.web.hub import Hub


async def json_stream(hub: Hub, execution_id: str, after: int) -> AsyncIterator[bytes]:
    """streamll's own format: each event's wire JSON as ``data``, its sequence as ``id`` (encoded once per event)."""
    async for batch in hub.batches(execution_id, after):
        yield b"".join(event.sse() for event in batch)


async def ai_sdk_stream(
    hub: Hub, execution_id: str, after: int, reasoning_fields: frozenset[str] = REASONING_FIELDS
) -> AsyncIterator[bytes]:
    """The AI SDK UI message stream: chunks as ``data``; the last chunk of each event carries its sequence as ``id``."""
    converter = UIMessageStream(execution_id, reasoning_fields)
    async for batch in hub.batches(execution_id, after):
        messages = []
        for event in batch:
            chunks = converter.chunks(event)
            for position, chunk in enumerate(chunks):
                last = position == len(chunks) - 1
                data = json.dumps(chunk, separators=(",", ":"))
                messages.append(ServerSentEvent(data=data, id=str(event.sequence) if last else None).encode())
            if event.closes_execution:
                messages.append(ServerSentEvent(data=DONE).encode())
        yield b"".join(messages)


__all__ = ["ai_sdk_stream", "json_stream"]
