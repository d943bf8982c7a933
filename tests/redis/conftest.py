"""Redis fixtures: the server URL, a fresh stream key per test, and private servers for outage tests.

``STREAMLL_TEST_REDIS_URL`` names the server (default ``redis://127.0.0.1:6379/0``).
When nothing answers there, a throwaway ``redis-server`` is started on a free
port; when that is impossible too, the tests skip (or fail under CI).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import pytest
import redis.asyncio as aioredis
from streamll_redis import RedisSink, RedisStreamConsumer

from tests.helpers import BrokerProcess, broker_unavailable, free_port, url_reachable

REDIS_URL_ENV = "STREAMLL_TEST_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def with_query(url: str, **params: Any) -> str:
    """``url`` with ``params`` added to its query string."""
    parts = urlsplit(url)
    extra = urlencode({key: str(value) for key, value in params.items()})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def redis_server() -> str:
    """Path of ``redis-server``, or skip / fail when it is not installed."""
    executable = BrokerProcess.available("redis-server")
    if executable is None:
        broker_unavailable("redis", "redis-server is not installed")
    assert executable is not None
    return executable


class PrivateRedis(BrokerProcess):
    """A ``redis-server`` of the test's own on a free loopback port: safe to stop and restart."""

    def __init__(self, *extra_args: str, workdir: Path | None = None) -> None:
        port = free_port()
        command = [redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", *extra_args]
        if "--appendonly" not in extra_args:
            command += ["--appendonly", "no"]
        super().__init__("redis", command, port, workdir=workdir)

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a reachable Redis server (the local one, or a private one started for the session)."""
    url = os.environ.get(REDIS_URL_ENV, DEFAULT_REDIS_URL)
    if url_reachable(url, 6379):
        yield url
        return
    server = PrivateRedis()
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        broker_unavailable("redis", f"nothing answers at {url} and a private redis-server did not start: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def stream_key(request: pytest.FixtureRequest) -> str:
    """A stream key no other test uses."""
    return f"streamll-test:{request.node.name[:40]}:{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_client(redis_url: str, stream_key: str) -> AsyncIterator[aioredis.Redis]:
    """A plain ``redis.asyncio`` client for inspecting the server; deletes the test's stream afterwards."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.delete(stream_key)
    await client.aclose()


@pytest.fixture
def make_sink() -> Iterator[Callable[..., RedisSink]]:
    """Build RedisSinks that are stopped when the test ends."""
    sinks: list[RedisSink] = []

    def make(url: str, **options: Any) -> RedisSink:
        sink = RedisSink(url, **options)
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.stop(timeout=2)


@pytest.fixture
async def make_consumer() -> AsyncIterator[Callable[..., RedisStreamConsumer]]:
    """Build consumers that are stopped when the test ends."""
    consumers: list[RedisStreamConsumer] = []

    def make(url: str, **options: Any) -> RedisStreamConsumer:
        consumer = RedisStreamConsumer(url, **options)
        consumers.append(consumer)
        return consumer

    yield make
    for consumer in consumers:
        await consumer.stop()


@pytest.fixture
def private_redis() -> Iterator[Callable[..., PrivateRedis]]:
    """Start private redis-servers (``private_redis("--appendonly", "yes", workdir=tmp_path)``); stopped afterwards."""
    servers: list[PrivateRedis] = []

    def start(*extra_args: str, workdir: Path | None = None) -> PrivateRedis:
        server = PrivateRedis(*extra_args, workdir=workdir)
        servers.append(server)
        try:
            server.start()
        except (OSError, RuntimeError) as exc:
            broker_unavailable("redis", f"a private redis-server did not start: {exc}")
        return server

    yield start
    for server in servers:
        server.stop()
