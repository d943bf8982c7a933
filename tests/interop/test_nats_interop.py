"""A Node.js consumer reads what an instrumented DSPy program streamed to NATS JetStream."""
# ruff: noqa: E402 - the plugin check runs before the imports that need the plugin

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from tests.helpers import require_plugin

require_plugin("nats")  # before importing it below

import nats
import streamll
from streamll.core import cloudevents
from streamll.core.events import TokenEvent
from streamll.core.serialization import encode_event
from streamll.testing import OfflineLMServer
from streamll_nats import NatsSink

from tests.interop.support import NodeConsumers, check_rebuilt_fields, check_summary, run_capitals
from tests.nats.conftest import delete_stream

pytestmark = [pytest.mark.interop, pytest.mark.nats]

SCRIPT = "nats-consumer.mjs"


@pytest.fixture
async def destination(nats_url: str, names: tuple[str, str]) -> AsyncIterator[str]:
    """The sink URL of a fresh subject and stream (the stream is deleted afterwards)."""
    subject, stream = names
    yield f"{nats_url}?subject={subject}&stream={stream}"
    await delete_stream(nats_url, stream)


def test_node_rebuilds_the_streamed_fields_from_nats(
    node_consumers: NodeConsumers, destination: str, lm: object, sinks: list[streamll.BaseSink]
) -> None:
    check_rebuilt_fields(node_consumers, SCRIPT, destination, NatsSink(destination), sinks)


def test_node_follows_executions_live(
    node_consumers: NodeConsumers,
    destination: str,
    lm: object,
    lm_server: OfflineLMServer,
    sinks: list[streamll.BaseSink],
) -> None:
    """Started before the program (the stream does not exist yet), it reads two executions as they happen."""
    consumer = node_consumers.start(SCRIPT, destination, "--executions", "2")
    try:
        sinks += [NatsSink(destination), streamll.MemorySink(name="nats-interop-live")]
        predictions = run_capitals(sinks, lm_server)
    finally:
        run = node_consumers.wait(consumer)
    check_summary(run, sinks[1], predictions, ["answer"])


async def test_node_reports_bodies_and_headers_that_break_the_contract(
    node_consumers: NodeConsumers,
    destination: str,
    names: tuple[str, str],
) -> None:
    subject, stream = names
    good = TokenEvent(execution_id="e1", token="Hi", token_index=0, field="answer")
    lying = TokenEvent(execution_id="e1", token="!", token_index=1, field="answer")
    broken = json.loads(encode_event(good))
    del broken["data"]["token_index"]
    nc = await nats.connect(destination.split("?", 1)[0])
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[subject])
        await js.publish(subject, encode_event(good), headers=cloudevents.headers(good, "ce-"))
        await js.publish(subject, encode_event(lying), headers={**cloudevents.headers(lying, "ce-"), "ce-id": "other"})
        await js.publish(subject, json.dumps(broken).encode(), headers=cloudevents.headers(good, "ce-"))
        await js.publish(subject, b"not json")
    finally:
        await nc.close()

    run = await asyncio.to_thread(node_consumers.run, SCRIPT, destination, "--count", "4")

    assert run.returncode == 1, run.explain()
    assert run.summary["valid"] == 1
    problems = [error for entry in run.summary["invalid"] for error in entry["errors"]]
    assert len(run.summary["invalid"]) == 3, run.explain()
    assert any("ce-id" in problem and lying.event_id in problem for problem in problems), problems
    assert any("token_index" in problem for problem in problems), problems
    assert any(problem.startswith("not JSON") for problem in problems), problems
