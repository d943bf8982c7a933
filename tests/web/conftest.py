"""Fixtures for the web relay tests: brokers (shared with the transport tests), relays, a slow LM server."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from streamll.testing import OfflineLMServer
from streamll_redis.url import parse_redis_url

from tests.helpers import require_module, skip_or_fail
from tests.nats.conftest import delete_stream, nats_url  # noqa: F401 - fixture
from tests.redis.conftest import (
    redis_url,  # noqa: F401 - fixture
    with_query,
)
from tests.web.support import RelayProcess

TOKEN_DELAY = 0.01
"""Seconds between the offline LM's tokens: a reply streams for about a second, so tests can join mid-stream."""


@pytest.fixture(scope="session")
def slow_lm_server() -> Iterator[OfflineLMServer]:
    """An offline LM server that streams slowly enough to read a reply while it is generated."""
    with OfflineLMServer(token_delay=TOKEN_DELAY) as server:
        yield server


@pytest.fixture
def slow_lm(slow_lm_server: OfflineLMServer) -> Any:
    """A ``dspy.LM`` (no cache) on the slow server."""
    slow_lm_server.reset()
    slow_lm_server.token_delay = TOKEN_DELAY
    return slow_lm_server.lm()


@pytest.fixture(scope="session")
def redis_source(redis_url: str) -> Iterator[str]:  # noqa: F811
    """A Redis URL with a stream of its own and per-execution keys on (producer and relay share it)."""
    source = with_query(redis_url, stream=f"streamll-web-test:{uuid.uuid4().hex[:12]}", per_execution="true")
    yield source
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{parse_redis_url(source).stream}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="session")
def redis_relay(redis_source: str) -> Iterator[RelayProcess]:
    """One relay process on ``redis_source`` for the session (tests that kill a relay start their own)."""
    relay = RelayProcess(redis_source, heartbeat=0.5).start()
    yield relay
    relay.stop()


@pytest.fixture
def relays() -> Iterator[Callable[..., RelayProcess]]:
    """Start relay processes (``relays(source, secret=None)``); killed when the test ends."""
    started: list[RelayProcess] = []

    def start(source: str, **options: Any) -> RelayProcess:
        relay = RelayProcess(source, **options)
        started.append(relay)
        return relay.start()

    yield start
    for relay in started:
        relay.stop()


@pytest.fixture(scope="session")
def nats_source(nats_url: str) -> Iterator[str]:  # noqa: F811
    """A NATS URL with a stream and subject of its own, publishing per execution."""
    name = uuid.uuid4().hex[:10]
    source = with_query(nats_url, subject=f"webtest.{name}", stream=f"WEBTEST_{name}", per_execution="true")
    yield source
    # in a thread of its own: pytest-asyncio may have a loop running in this thread at teardown
    cleanup = threading.Thread(target=asyncio.run, args=(delete_stream(nats_url, f"WEBTEST_{name}"),))
    cleanup.start()
    cleanup.join(30)


@pytest.fixture(scope="session")
def nats_relay(nats_source: str) -> Iterator[RelayProcess]:
    """One relay process on ``nats_source`` for the session."""
    relay = RelayProcess(nats_source, heartbeat=0.5).start()
    yield relay
    relay.stop()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from the system package (never a downloaded browser).

    Module-scoped: Playwright's sync API keeps an event loop running in this thread while it is open,
    and code that calls ``asyncio.run`` (``streamll.cancel``, say) cannot run in other modules meanwhile.
    """
    sync_api = require_module("playwright.sync_api")
    executable = shutil.which("chromium") or (CHROMIUM if os.path.exists(CHROMIUM) else None)
    if executable is None:
        message = "chromium is not installed (apt-get install chromium)"
        skip_or_fail(message)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
