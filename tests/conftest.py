"""Fixtures for the whole suite: the offline LM server and a clean streamll configuration."""

from __future__ import annotations

import os
from collections.abc import Iterator

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import pytest
import streamll
from streamll.sinks.memory import MemorySink

pytest_plugins = ["tests.schema_check"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--real-lm", action="store_true", help="also run tests/real_lm against a real local model (nox -s real-lm)"
    )


def pytest_ignore_collect(collection_path: os.PathLike[str], config: pytest.Config) -> bool | None:
    """tests/real_lm needs the local-model extra and minutes of CPU: collected only with --real-lm."""
    if os.path.basename(collection_path) == "real_lm" and not config.getoption("--real-lm"):
        return True
    return None


@pytest.fixture(scope="session")
def lm_server() -> Iterator[OfflineLMServer]:  # noqa: F821
    """One offline OpenAI-compatible streaming server for the session."""
    from streamll.testing import OfflineLMServer

    with OfflineLMServer() as server:
        yield server


@pytest.fixture
def memory_sink() -> Iterator[MemorySink]:
    """A fresh MemorySink configured as the only sink; configuration restored afterwards."""
    sink = MemorySink(name="test-memory")
    streamll.configure(sinks=[sink])
    yield sink
    streamll.configure(sinks=None)
    sink.stop()
