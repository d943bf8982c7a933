"""Fixtures for tests against a real model: SmolLM2-135M served by llama.cpp (``nox -s real-lm``).

The server is required here: a missing package or model file fails the run with the
install command, whatever the environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dspy
import pytest
from streamll.testing import LocalModelServer, LocalModelUnavailable

from tests.kafka.conftest import kafka_bootstrap  # noqa: F401  (broker fixtures for the roundtrips)
from tests.nats.conftest import names, nats_url  # noqa: F401
from tests.redis.conftest import redis_url, stream_key  # noqa: F401


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "real_lm" in item.nodeid.split("/"):
            item.add_marker(pytest.mark.real_lm)


@pytest.fixture(scope="session")
def local_model() -> Iterator[LocalModelServer]:
    """One llama.cpp server with the local model for the session (one CPU thread)."""
    try:
        server = LocalModelServer().start()
    except LocalModelUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def real_lm(local_model: LocalModelServer) -> Iterator[Any]:
    """The real model as DSPy's LM, with the ChatAdapter (what a user configures before the spec's examples)."""
    lm = local_model.lm()
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        yield lm
