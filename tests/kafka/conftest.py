"""Kafka fixtures: a broker for the session, a fresh topic per test, private brokers for outage tests.

The broker comes from ``STREAMLL_TEST_KAFKA_URL`` (``kafka://host:port``) or
``STREAMLL_TEST_KAFKA`` (``host:port``) when set. Otherwise a private
noida-db (a Kafka-protocol broker shipped as a PyPI wheel, the ``test`` extra
of streamll-kafka) is started on a free loopback port for the session; when
that is impossible the tests skip (or fail under CI).

``STREAMLL_TEST_KAFKA_OPTIONS`` is appended to every URL the tests build, e.g.
``enable_idempotence=false`` for brokers without idempotent producers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from streamll_kafka import KafkaSink

from tests.helpers import BrokerProcess, broker_unavailable, free_port, port_open

KAFKA_ENV = "STREAMLL_TEST_KAFKA"
KAFKA_URL_ENV = "STREAMLL_TEST_KAFKA_URL"
KAFKA_OPTIONS_ENV = "STREAMLL_TEST_KAFKA_OPTIONS"


def noida_binary() -> str | None:
    """The noida-db broker binary (inside its wheel, or on PATH)."""
    try:
        import noida_db
    except ImportError:
        return shutil.which("noida-db")
    binary = Path(noida_db.__file__).with_name("noida-db")
    return str(binary) if binary.is_file() else shutil.which("noida-db")


class PrivateKafka(BrokerProcess):
    """A noida-db Kafka listener of the test's own on a free loopback port; data survives restarts."""

    def __init__(self, data_dir: Path) -> None:
        binary = noida_binary()
        if binary is None:
            broker_unavailable("kafka", "noida-db is not installed (pip install -e 'packages/streamll-kafka[test]')")
        assert binary is not None
        port = free_port()
        command = [
            binary, "start", "--host", "127.0.0.1", "--only", "kafka",
            "--kafka-port", str(port), "--data-dir", str(data_dir),
        ]  # fmt: skip
        super().__init__("kafka", command, port)
        self.data_dir = data_dir

    def wipe_data(self) -> None:
        """Forget every topic and offset (call while stopped), like a memory-only broker restarting."""
        shutil.rmtree(self.data_dir, ignore_errors=True)

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"


def _configured_broker() -> str | None:
    url = os.environ.get(KAFKA_URL_ENV)
    if url:
        return url.split("://", 1)[-1].split("?", 1)[0].split("/", 1)[0]
    return os.environ.get(KAFKA_ENV) or None


def kafka_url(bootstrap: str, topic: str, **options: Any) -> str:
    """A ``kafka://`` URL for ``topic`` with ``options`` and the suite's extra options."""
    query = urlencode({"topic": topic, **{key: str(value) for key, value in options.items()}})
    extra = os.environ.get(KAFKA_OPTIONS_ENV, "").strip("&")
    return f"kafka://{bootstrap}?{query}" + (f"&{extra}" if extra else "")


def unique(prefix: str = "t") -> str:
    """A topic / group name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def create_topic(bootstrap: str, name: str, partitions: int = 1) -> str:
    """Create ``name`` with ``partitions`` partitions and wait until its metadata shows them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    await asyncio.sleep(0)  # let aiokafka's tasks start, or an immediate stop() raises CancelledError
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(consumer.partitions_for_topic(name) or ()) < partitions:
            assert loop.time() < deadline, f"topic {name} did not get {partitions} partitions"
            await consumer.topics()
    finally:
        await consumer.stop()
    return name


async def produce_raw(bootstrap: str, topic: str, *bodies: bytes, key: bytes | None = None) -> None:
    """Put ``bodies`` on ``topic`` as records, bypassing streamll."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for body in bodies:
            await producer.send_and_wait(topic, body, key=key)
    finally:
        await producer.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a reachable Kafka-protocol broker (configured, or private for the session)."""
    configured = _configured_broker()
    if configured:
        host, _, port = configured.split(",")[0].rpartition(":")
        if not port_open(host.strip("[]") or "127.0.0.1", int(port or 9092)):
            broker_unavailable("kafka", f"nothing answers at {configured} ({KAFKA_ENV} / {KAFKA_URL_ENV})")
        yield configured
        return
    broker = PrivateKafka(tmp_path_factory.mktemp("kafka"))
    try:
        broker.start()
    except (OSError, RuntimeError) as exc:
        broker_unavailable("kafka", f"a private noida-db broker did not start: {exc}")
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
async def topic(kafka_bootstrap: str) -> str:
    """A fresh one-partition topic."""
    return await create_topic(kafka_bootstrap, unique())


@pytest.fixture
def url_for(kafka_bootstrap: str) -> Callable[..., str]:
    """``url_for(topic, **options)``: a sink / consumer URL on the session's broker."""

    def build(topic: str, **options: Any) -> str:
        return kafka_url(kafka_bootstrap, topic, **options)

    return build


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[PrivateKafka]:
    """A broker of this test's own, safe to stop and restart."""
    broker = PrivateKafka(tmp_path / "kafka-data")
    try:
        broker.start()
    except (OSError, RuntimeError) as exc:
        broker_unavailable("kafka", f"a private noida-db broker did not start: {exc}")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
async def make_sink() -> AsyncIterator[Callable[..., KafkaSink]]:
    """Build KafkaSinks (``make_sink(url, **options)``) that are stopped when the test ends, even if it failed."""
    made: list[KafkaSink] = []

    def make(url: str, **options: Any) -> KafkaSink:
        sink = KafkaSink(url, **options)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        await asyncio.to_thread(sink.stop, 5.0)


async def read_records(bootstrap: str, topic: str, count: int, timeout: float = 20.0) -> list[Any]:
    """The first ``count`` raw records of ``topic`` (all partitions), read with plain aiokafka."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(records) < count:
            remaining = deadline - loop.time()
            assert remaining > 0, f"read {len(records)} of {count} records from {topic}"
            batches = await consumer.getmany(timeout_ms=int(min(remaining, 1.0) * 1000))
            for batch in batches.values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records
