"""Fixtures for the whole suite: the offline LM server and a clean streamll configuration."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# DSPy's disk cache in a directory of this run's own (read when dspy is first imported; subprocesses inherit it),
# never the user's ~/.dspy_cache: no answer cached by another run can stand in for a request, none is left behind.
os.environ["DSPY_CACHEDIR"] = tempfile.mkdtemp(prefix="streamll-tests-dspy-cache-")

import pytest
import streamll
from streamll.sinks.memory import MemorySink

from tests.helpers import ALLOWED_IN_CI, running_in_ci

pytest_plugins = ["tests.schema_check"]
atexit.register(shutil.rmtree, os.environ["DSPY_CACHEDIR"], ignore_errors=True)


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def _fails_in_ci(report: pytest.TestReport | pytest.CollectReport) -> bool:
    if not (report.skipped and running_in_ci()) or hasattr(report, "wasxfail"):
        return False
    return not _skip_reason(report).startswith(ALLOWED_IN_CI)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Under ``CI=true`` nothing skips: a skip becomes a failure unless its reason starts with ALLOWED_IN_CI."""
    outcome = yield
    report = outcome.get_result()
    if _fails_in_ci(report):
        report.longrepr = f"skipped under CI=true, where every test must run: {_skip_reason(report)}"
        report.outcome = "failed"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    """The same rule for a module skipped as a whole (``pytest.importorskip`` at import time)."""
    outcome = yield
    report = outcome.get_result()
    if _fails_in_ci(report):
        report.longrepr = f"module skipped under CI=true, where every test must run: {_skip_reason(report)}"
        report.outcome = "failed"


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
