"""Fixtures for the interop tests: the Node.js consumers in ``interop/`` and a streaming LM.

The consumers need ``node`` and ``npm ci --prefix interop``. Without them the
tests skip on a laptop and fail under CI (``CI=true`` or
``STREAMLL_REQUIRE_BROKERS=1``), like a missing broker.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

import dspy
import pytest
import streamll
from streamll.testing import OfflineLMServer

from tests.interop.support import INTEROP_DIR, REQUIRED_MODULES, NodeConsumers, node_unavailable

# The transport suites' broker fixtures, shared so the interop tests use the same brokers.
# A transport whose plugin is not installed has no fixtures here; its interop tests skip.
with contextlib.suppress(ImportError):
    from tests.nats.conftest import names, nats_url  # noqa: F401
with contextlib.suppress(ImportError):
    from tests.kafka.conftest import kafka_bootstrap, topic, url_for  # noqa: F401
with contextlib.suppress(ImportError):
    from tests.redis.conftest import redis_url  # noqa: F401


@pytest.fixture(scope="session")
def node_consumers() -> NodeConsumers:
    """The Node consumers, ready to run (skips or fails when node or the npm packages are missing)."""
    node = shutil.which("node")
    if node is None:
        node_unavailable("node is not installed")
    missing = [name for name in REQUIRED_MODULES if not (INTEROP_DIR / "node_modules" / name).is_dir()]
    if missing:
        node_unavailable(f"npm packages {', '.join(missing)} not installed: run `npm ci --prefix interop`")
    assert node is not None
    return NodeConsumers(node)


@pytest.fixture
def sinks() -> Iterator[list[streamll.BaseSink]]:
    """Sinks a test made; stopped afterwards even when it failed."""
    made: list[streamll.BaseSink] = []
    yield made
    for sink in made:
        sink.stop(5)


@pytest.fixture
def lm(lm_server: OfflineLMServer) -> Iterator[dspy.LM]:
    """A streaming ``dspy.LM`` on the offline server, DSPy's default for the test (knobs reset around it)."""
    lm_server.reset()
    model = lm_server.lm()
    with dspy.context(lm=model, adapter=dspy.ChatAdapter()):
        yield model
    lm_server.reset()
