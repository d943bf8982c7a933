"""``?format=ai-sdk`` read by the ``ai`` npm package's own client (Node.js), compared with the prediction."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamll
from streamll_redis import RedisSink

from tests.helpers import skip_or_fail
from tests.web.support import Producer, RelayProcess, read_sse

pytestmark = [pytest.mark.redis, pytest.mark.interop]

INTEROP = Path(__file__).resolve().parents[2] / "interop"


def node_reader() -> list[str]:
    node = shutil.which("node")
    if node is None or not (INTEROP / "node_modules" / "ai").is_dir():
        message = "node or interop/node_modules/ai missing (npm ci --prefix interop)"
        skip_or_fail(message)
    return [node, str(INTEROP / "ai-sdk-reader.mjs")]


@pytest.fixture
def sink(redis_source: str) -> Iterator[RedisSink]:
    sink = RedisSink(redis_source)
    yield sink
    sink.stop(timeout=5)


def test_the_ai_package_rebuilds_the_prediction(redis_relay: RelayProcess, sink: RedisSink, slow_lm: Any) -> None:
    command = node_reader()
    producer = Producer(sink, slow_lm, before=lambda: streamll.emit("retrieved", {"documents": 3})).start()
    url = f"{redis_relay.base}/executions/{producer.execution_id}/events?format=ai-sdk"
    reader = subprocess.Popen([*command, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # joins mid-stream
    prediction = producer.join()
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err.decode()
    message = json.loads(out)

    assert message["role"] == "assistant" and message["id"] == producer.execution_id
    parts = message["parts"]
    reasoning = [part["text"] for part in parts if part["type"] == "reasoning"]
    text = [part["text"] for part in parts if part["type"] == "text"]
    assert reasoning == [prediction.reasoning]
    assert text == [prediction.answer]
    assert all(part["state"] == "done" for part in parts if part["type"] in ("text", "reasoning"))
    assert [part["data"] for part in parts if part["type"] == "data-retrieved"] == [{"documents": 3}]
    assert [part["type"] for part in parts].count("step-start") == 1, "one LM call, one step"
    metadata = message["metadata"]
    assert metadata["executionId"] == producer.execution_id and metadata["finishReason"] == "stop"
    assert metadata["usage"]["total_tokens"] > 0

    replay = read_sse(url, timeout=20)
    assert replay.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert replay.frames[-1].data == "[DONE]" and replay.ended
    assert json.loads(replay.frames[0].data) == {"type": "start", "messageId": producer.execution_id}
