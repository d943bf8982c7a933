"""A Node.js consumer reads what an instrumented DSPy program streamed to a Kafka-protocol broker."""
# ruff: noqa: E402 - the plugin check runs before the imports that need the plugin

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from tests.helpers import require_plugin

require_plugin("kafka")  # before importing it below

import streamll
from aiokafka import AIOKafkaProducer
from streamll.core.events import TokenEvent
from streamll.testing import OfflineLMServer
from streamll_kafka import KafkaSink
from streamll_kafka.records import record_headers, record_key, record_value

from tests.interop.support import NodeConsumers, check_rebuilt_fields, check_summary, run_capitals

pytestmark = [pytest.mark.interop, pytest.mark.kafka]

SCRIPT = "kafka-consumer.mjs"


@pytest.fixture
def destination(url_for: Callable[..., str], topic: str) -> str:
    """The sink URL of a fresh one-partition topic."""
    return url_for(topic)


def test_node_rebuilds_the_streamed_fields_from_kafka(
    node_consumers: NodeConsumers, destination: str, lm: object, sinks: list[streamll.BaseSink]
) -> None:
    check_rebuilt_fields(node_consumers, SCRIPT, destination, KafkaSink(destination), sinks)


def test_node_reads_several_executions_in_order(
    node_consumers: NodeConsumers,
    destination: str,
    lm: object,
    lm_server: OfflineLMServer,
    sinks: list[streamll.BaseSink],
) -> None:
    sinks += [KafkaSink(destination), streamll.MemorySink(name="kafka-interop-many")]
    predictions = run_capitals(sinks, lm_server)

    run = node_consumers.run(SCRIPT, destination, "--executions", "2")

    check_summary(run, sinks[1], predictions, ["answer"])


async def test_node_reports_records_that_break_the_contract(
    node_consumers: NodeConsumers,
    destination: str,
    kafka_bootstrap: str,
    topic: str,
) -> None:
    good = TokenEvent(execution_id="e1", token="Hi", token_index=0, field="answer")
    lying = TokenEvent(execution_id="e1", token="!", token_index=1, field="answer")
    misplaced = TokenEvent(execution_id="e1", token="?", token_index=2, field="answer")
    broken = json.loads(record_value(good))
    broken["data"]["token_index"] = -1
    wrong_type = [(name, b"dev.streamll.end" if name == "ce_type" else value) for name, value in record_headers(lying)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, record_value(good), key=record_key(good), headers=record_headers(good))
        await producer.send_and_wait(topic, record_value(lying), key=record_key(lying), headers=wrong_type)
        await producer.send_and_wait(topic, record_value(misplaced), key=b"e2", headers=record_headers(misplaced))
        await producer.send_and_wait(topic, json.dumps(broken).encode(), key=b"e1", headers=record_headers(good))
    finally:
        await producer.stop()

    run = await asyncio.to_thread(node_consumers.run, SCRIPT, destination, "--count", "4")

    assert run.returncode == 1, run.explain()
    assert run.summary["valid"] == 1
    assert len(run.summary["invalid"]) == 3, run.explain()
    problems = [error for entry in run.summary["invalid"] for error in entry["errors"]]
    assert any("ce_type" in problem and "dev.streamll.token" in problem for problem in problems), problems
    assert any("record key" in problem and '"e2"' in problem for problem in problems), problems
    assert any("token_index" in problem for problem in problems), problems
