"""NATS fixtures: the server URL, private servers for restart and auth tests, fresh streams."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from streamll_nats import NatsSink

from tests.helpers import BrokerProcess, broker_unavailable, free_port, url_reachable

URL_ENV = "STREAMLL_TEST_NATS_URL"
MakeSink = Callable[..., NatsSink]
DEFAULT_URL = "nats://127.0.0.1:4222"


def start_private_server(
    workdir: Path, *extra: str, port: int | None = None, name: str = "nats-server"
) -> BrokerProcess | None:
    """A JetStream server with file storage in ``workdir`` on a free port (None: no nats-server installed)."""
    binary = BrokerProcess.available("nats-server")
    if binary is None:
        return None
    port = port or free_port()
    store = workdir / "jetstream"
    store.mkdir(parents=True, exist_ok=True)
    command: Sequence[str] = [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store), *extra]
    return BrokerProcess(name, command, port, workdir=workdir).start()


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The NATS server for the suite: ``STREAMLL_TEST_NATS_URL``, the local one, or a private one."""
    url = os.environ.get(URL_ENV, DEFAULT_URL)
    if url_reachable(url, 4222):
        yield url
        return
    try:
        server = start_private_server(tmp_path_factory.mktemp("nats-session"))
    except RuntimeError as exc:
        broker_unavailable("NATS", f"{url} unreachable and a private nats-server did not start: {exc}")
        return
    if server is None:
        broker_unavailable("NATS", f"{url} unreachable and nats-server is not installed")
        return
    try:
        yield f"nats://127.0.0.1:{server.port}"
    finally:
        server.stop()


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A JetStream server of this test's own (file storage under tmp_path), safe to stop and restart."""
    try:
        server = start_private_server(tmp_path)
    except RuntimeError as exc:
        server = None
        broker_unavailable("NATS", f"private nats-server did not start: {exc}")
    if server is None:
        broker_unavailable("NATS", "nats-server is not installed")
    assert server is not None
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def names() -> tuple[str, str]:
    """A unique (subject, stream) pair for one test."""
    suffix = uuid.uuid4().hex[:10]
    return f"test.streamll.{suffix}", f"TEST_STREAMLL_{suffix}"


async def delete_stream(url: str, stream: str) -> None:
    """Remove a test stream (missing is fine)."""
    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(stream)
    except NotFoundError:
        pass
    finally:
        await nc.close()


@pytest.fixture
async def js(nats_url: str, names: tuple[str, str]) -> AsyncIterator[JetStreamContext]:
    """A JetStream context on the suite's server; the test's stream is deleted afterwards."""
    nc = await nats.connect(nats_url)
    try:
        yield nc.jetstream()
    finally:
        with contextlib.suppress(NotFoundError):
            await nc.jetstream().delete_stream(names[1])
        await nc.close()


@pytest.fixture
async def make_sink(js: JetStreamContext) -> AsyncIterator[MakeSink]:
    """Builds NatsSinks that are stopped after the test (before its stream is deleted)."""
    sinks: list[NatsSink] = []

    def make(url: str, **options: Any) -> NatsSink:
        sink = NatsSink(url, **options)
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        await asyncio.to_thread(sink.stop, 2.0)
