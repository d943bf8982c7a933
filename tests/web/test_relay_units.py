"""Narrow tests of the relay's pieces: repeats dropped, resume position, the AI SDK mapping of every event kind."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from streamll.executions import ExecutionLog, StoredEvent
from streamll.web.aisdk import UIMessageStream
from streamll.web.hub import Hub


def body(sequence: int, event_type: str = "token", parent_id: str | None = "p", **data: Any) -> bytes:
    return json.dumps(
        {"event_type": event_type, "sequence": sequence, "parent_id": parent_id, "execution_id": "e", "data": data}
    ).encode()


class ListLog(ExecutionLog):
    """Stored bodies as a broker would hand them over, including a retried write's repeats."""

    def __init__(self, bodies: list[bytes]) -> None:
        self.stored = bodies
        self.readers = 0

    async def bodies(self, execution_id: str) -> AsyncIterator[bytes]:
        self.readers += 1
        for item in self.stored:
            yield item
        await asyncio.Event().wait()  # a live log waits for more


STORED = [body(0, "start", None), body(1), body(2), body(1), body(2), body(3), body(4, "end", None)]


async def test_repeats_are_dropped_and_resume_starts_after_the_given_sequence() -> None:
    async def main() -> tuple[list[int], list[int], int, int]:
        log = ListLog(STORED)
        hub = Hub(log)
        everything = [event.sequence async for batch in hub.batches("e") for event in batch]
        resumed = [event.sequence async for batch in hub.batches("e", after=2) for event in batch]
        return everything, resumed, log.readers, len(hub.feeds)

    everything, resumed, readers, feeds_left = await main()
    assert everything == [0, 1, 2, 3, 4]
    assert resumed == [3, 4]
    assert feeds_left == 0, "a feed is dropped with its last connection"
    assert readers == 2


async def test_connections_to_one_execution_share_one_reader() -> None:
    async def main() -> tuple[list[list[int]], int]:
        log = ListLog(STORED)
        hub = Hub(log)

        async def read(after: int) -> list[int]:
            return [event.sequence async for batch in hub.batches("e", after) for event in batch]

        results = await asyncio.gather(*(read(after) for after in (-1, 0, 3)))
        return list(results), log.readers

    results, readers = await main()
    assert results == [[0, 1, 2, 3, 4], [1, 2, 3, 4], [4]]
    assert readers == 1


def test_ai_sdk_mapping_of_every_event_kind() -> None:
    converter = UIMessageStream("e")
    events = [
        body(0, "start", None),
        json.dumps({"event_type": "start", "sequence": 1, "parent_id": "x", "operation": "lm", "data": {}}).encode(),
        body(2, field="reasoning", token="Because", finish_reason="stop"),
        body(3, field="answer", token="Yes", finish_reason=None),
        json.dumps(
            {"event_type": "end", "sequence": 4, "parent_id": "x", "operation": "lm", "data": {"usage": {"total": 5}}}
        ).encode(),
        json.dumps(
            {
                "event_type": "start",
                "sequence": 5,
                "parent_id": "x",
                "operation": "tool",
                "event_id": "t1",
                "module_name": "search",
                "data": {"inputs": {"q": "a"}},
            }
        ).encode(),
        json.dumps(
            {
                "event_type": "end",
                "sequence": 6,
                "parent_id": "x",
                "operation": "tool",
                "data": {"span_id": "t1", "outputs": ["doc"]},
            }
        ).encode(),
        body(7, "retrieved", "x", documents=2),
        body(8, "error", None, error_type="ValueError", error_message="boom"),
    ]
    chunks = [chunk for item in events for chunk in converter.chunks(StoredEvent.parse(item))]  # type: ignore[arg-type]
    assert [chunk["type"] for chunk in chunks] == [
        "start",
        "start-step",
        "reasoning-start",
        "reasoning-delta",
        "reasoning-end",
        "text-start",
        "text-delta",
        "text-end",  # the LM call ended: its open parts close
        "finish-step",
        "tool-input-available",
        "tool-output-available",
        "data-retrieved",
        "error",
        "finish",
    ]
    assert chunks[9]["toolCallId"] == chunks[10]["toolCallId"] == "t1" and chunks[10]["output"] == ["doc"]
    assert chunks[-2]["errorText"] == "ValueError: boom"
    assert chunks[-1]["finishReason"] == "error" and chunks[-1]["messageMetadata"]["usage"] == {"total": 5}
