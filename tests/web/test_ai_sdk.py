"""``?format=ai-sdk`` read by the ``ai`` npm package's own client (Node.js), compared with the prediction."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dspy
import pytest
import streamll
from streamll.testing import OfflineLMServer
from streamll_redis import RedisSink

from tests.agent_programs import (
    NATIVE_CALLS,
    PLAN,
    native_adapter,
    native_agent,
    native_lm,
    native_responder,
    react_agent,
    react_responder,
)
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


@pytest.fixture
def offline(lm_server: OfflineLMServer) -> Iterator[OfflineLMServer]:
    """The session's offline LM server, its knobs reset before and after."""
    lm_server.reset()
    yield lm_server
    lm_server.reset()


def run_agent(sink: RedisSink, lm: Any, adapter: Any, program: Any) -> tuple[str, Any]:
    """Run ``program`` to its end inside an execution streaming to ``sink``; (execution id, result)."""
    run = streamll.execution(sinks=[sink])
    with dspy.context(lm=lm, adapter=adapter), run:
        result = program(question="What is Paris like today?")
    assert sink.flush(timeout=10)
    return run.execution_id, result


def read_message(relay: RelayProcess, execution_id: str, query: str = "") -> dict[str, Any]:
    url = f"{relay.base}/executions/{execution_id}/events?format=ai-sdk{query}"
    done = subprocess.run([*node_reader(), url], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    message: dict[str, Any] = json.loads(done.stdout)
    return message


def tool_parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [part for part in message["parts"] if part["type"] == "dynamic-tool"]


def test_the_ai_package_shows_a_react_agents_tools(
    redis_relay: RelayProcess, sink: RedisSink, offline: OfflineLMServer
) -> None:
    offline.configure(responder=react_responder)
    agent = react_agent(stream_fields=["next_thought", "next_tool_args", "answer"])
    execution_id, prediction = run_agent(sink, offline.lm(), dspy.ChatAdapter(), agent)

    message = read_message(redis_relay, execution_id, "&reasoning_fields=next_thought")
    tools = tool_parts(message)
    assert [(part["toolName"], part["input"]) for part in tools] == [(name, args) for name, args in PLAN]
    states = ["output-available", "output-error", "output-available", "output-available"]
    assert [part["state"] for part in tools] == states
    assert tools[0]["output"] == "Sunny and 21 C in Paris." and tools[2]["output"] == "2100000"
    assert tools[1]["errorText"].startswith("KeyError: ")
    thoughts = [part["text"] for part in message["parts"] if part["type"] == "reasoning"]
    assert thoughts == [f"Step {step}: I will use {name}." for step, (name, _) in enumerate(PLAN)]
    assert [part["text"] for part in message["parts"] if part["type"] == "text"] == [prediction.answer]
    statuses = [part["data"]["message"] for part in message["parts"] if part["type"] == "data-status"]
    assert statuses[0] == "Calling tool weather..."
    assert [part["type"] for part in message["parts"]].count("step-start") == len(PLAN) + 1
    # each step's arguments streamed into its tool part while the LM wrote them
    url = f"{redis_relay.base}/executions/{execution_id}/events?format=ai-sdk"
    chunks = [json.loads(frame.data) for frame in read_sse(url, timeout=20).frames if frame.data != "[DONE]"]
    for part in tools:
        kinds = [chunk["type"] for chunk in chunks if chunk.get("toolCallId") == part["toolCallId"]]
        deltas = kinds.count("tool-input-delta")
        assert kinds[: 1 + deltas] == ["tool-input-start"] + ["tool-input-delta"] * deltas and deltas >= 1, kinds
        assert set(kinds[1 + deltas : -1]) == {"tool-input-available"}, kinds  # again from tool_start: the name
        assert kinds[-1] in ("tool-output-available", "tool-output-error"), kinds


def test_the_ai_package_streams_native_tool_call_inputs(
    redis_relay: RelayProcess, sink: RedisSink, offline: OfflineLMServer
) -> None:
    offline.configure(responder=native_responder)
    execution_id, results = run_agent(sink, native_lm(offline), native_adapter(), native_agent())

    message = read_message(redis_relay, execution_id)
    tools = tool_parts(message)
    assert [(part["toolName"], part["input"]) for part in tools] == [(c["name"], c["arguments"]) for c in NATIVE_CALLS]
    assert [part["output"] for part in tools] == [str(result) for result in results]
    assert all(part["state"] == "output-available" for part in tools)
    assert message["metadata"]["finishReason"] == "tool_calls"

    chunks = [
        json.loads(frame.data)
        for frame in read_sse(f"{redis_relay.base}/executions/{execution_id}/events?format=ai-sdk", timeout=20).frames
        if frame.data != "[DONE]"
    ]
    kinds = [chunk["type"] for chunk in chunks]
    first = kinds.index("tool-input-start")
    assert kinds[first + 1] == "tool-input-delta"  # the arguments arrive in pieces before they are available
    deltas = [
        c["inputTextDelta"]
        for c in chunks
        if c["type"] == "tool-input-delta" and c["toolCallId"] == tools[0]["toolCallId"]
    ]
    assert len(deltas) > 1 and json.loads("".join(deltas)) == NATIVE_CALLS[0]["arguments"]
