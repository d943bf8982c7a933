"""Agents on a real transport: a ReAct agent and native tool calls stream to Redis, read by Node.js and Python.

The Node.js consumer (``interop/redis-consumer.mjs``) validates every event against
the schema (the new tool event types included), rebuilds the streamed fields and each
native tool call's arguments, and lists the tool calls; streamll's own Python
``EventConsumer`` handles the tool events by name.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import dspy
import pytest

pytest.importorskip("streamll_redis")

import redis
import streamll
from streamll.testing import OfflineLMServer
from streamll_redis import RedisSink

from tests.agent_programs import (
    ANSWER,
    NATIVE_CALLS,
    PLAN,
    arguments_text,
    native_adapter,
    native_agent,
    native_lm,
    native_responder,
    react_agent,
    react_responder,
)
from tests.interop.support import NodeConsumers
from tests.redis.conftest import with_query

pytestmark = [pytest.mark.interop, pytest.mark.redis]

SCRIPT = "redis-consumer.mjs"


@pytest.fixture
def destination(redis_url: str) -> Iterator[str]:
    """The sink URL of a fresh stream key (deleted afterwards)."""
    key = f"streamll-agents:{uuid.uuid4().hex[:12]}"
    yield with_query(redis_url, stream=key)
    client = redis.Redis.from_url(redis_url)
    client.delete(key)
    client.close()


def stream_to(destination: str, sinks: list[streamll.BaseSink]) -> streamll.MemorySink:
    memory = streamll.MemorySink(name="redis-agents")
    sinks += [RedisSink(destination), memory]
    streamll.configure(sinks=list(sinks))
    return memory


@pytest.fixture
def configured(sinks: list[streamll.BaseSink], lm_server: OfflineLMServer) -> Iterator[list[streamll.BaseSink]]:
    """The test's sinks (configured by :func:`stream_to`); configuration and the LM server's knobs reset after."""
    lm_server.reset()
    yield sinks
    streamll.configure(sinks=None)
    lm_server.reset()


def test_node_reads_a_react_agents_tool_calls_from_redis(
    node_consumers: NodeConsumers, destination: str, lm_server: OfflineLMServer, configured: list[Any]
) -> None:
    memory = stream_to(destination, configured)
    lm_server.configure(responder=react_responder)
    with dspy.context(lm=lm_server.lm(), adapter=dspy.ChatAdapter()):
        prediction = react_agent()(question="What is Paris like today?")
    assert all(sink.flush(20) for sink in configured)

    run = node_consumers.run(SCRIPT, destination)
    assert run.returncode == 0, run.explain()
    assert run.summary["invalid"] == [] and run.summary["valid"] == len(memory.events), run.explain()
    (execution,) = run.summary["executions"]
    assert execution["ordered"] is True and execution["token_gaps"] == [] and execution["ended"] == "end"
    tools = execution["tools"]
    assert [(tool["tool_name"], tool["arguments"], tool["step"]) for tool in tools] == [
        (name, args, step) for step, (name, args) in enumerate(PLAN)
    ]
    assert [tool["outcome"] for tool in tools] == ["end", "error", "end", "end"]
    assert tools[0]["result"] == "Sunny and 21 C in Paris." and tools[1]["error_type"] == "KeyError"
    lm_starts = {event.event_id for event in memory.of_type("start") if event.operation == "lm"}
    assert all(tool["lm_call_id"] in lm_starts for tool in tools)
    assert execution["fields"]["answer"] == prediction.answer == ANSWER
    assert execution["fields"]["next_tool_name"] == "".join(name for name, _ in PLAN)


def test_node_rebuilds_native_tool_call_arguments_from_redis(
    node_consumers: NodeConsumers, destination: str, lm_server: OfflineLMServer, configured: list[Any]
) -> None:
    memory = stream_to(destination, configured)
    lm_server.configure(responder=native_responder)
    with dspy.context(lm=native_lm(lm_server), adapter=native_adapter()):
        native_agent()(question="What is Paris like today?")
    assert all(sink.flush(20) for sink in configured)

    run = node_consumers.run(SCRIPT, destination)
    assert run.returncode == 0, run.explain()
    (execution,) = run.summary["executions"]
    assert execution["token_gaps"] == [], run.explain()
    ids = [tool["tool_call_id"] for tool in execution["tools"]]
    expected = {call_id: arguments_text(call) for call_id, call in zip(ids, NATIVE_CALLS, strict=True)}
    assert execution["tool_inputs"] == expected
    assert [json.loads(execution["tool_inputs"][call_id]) for call_id in ids] == [c["arguments"] for c in NATIVE_CALLS]
    assert run.summary["valid"] == len(memory.events)


async def test_python_event_consumer_handles_tool_events(
    destination: str, lm_server: OfflineLMServer, configured: list[Any]
) -> None:
    memory = stream_to(destination, configured)
    lm_server.configure(responder=react_responder)

    def run_agent() -> None:
        with dspy.context(lm=lm_server.lm(), adapter=dspy.ChatAdapter()):
            react_agent()(question="What is Paris like today?")

    await asyncio.to_thread(run_agent)
    assert all(sink.flush(20) for sink in configured)

    consumer = streamll.EventConsumer(destination, from_beginning=True)
    seen: dict[str, list[Any]] = {"tool_start": [], "tool_end": [], "tool_error": [], "status": []}
    for kind, bucket in seen.items():
        consumer.on(kind)(bucket.append)
    expected = {kind: len(memory.of_type(kind)) for kind in seen}
    async with consumer:  # the transport reads only the types handlers want
        for _ in range(sum(expected.values())):
            event = await consumer.consumer.consume_one(timeout=5)
            assert event is not None
            await consumer.handle(event)
    assert {kind: len(events) for kind, events in seen.items()} == expected
    assert [event.data["tool_name"] for event in seen["tool_start"]] == [name for name, _ in PLAN]
    assert type(seen["tool_error"][0]).__name__ == "ToolErrorEvent"
