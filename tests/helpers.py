"""Shared test plumbing: waiting on conditions, broker discovery, throwaway broker processes, CI rules."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn
from urllib.parse import urlsplit

import pytest

REQUIRE_ENV = "STREAMLL_REQUIRE_BROKERS"


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, *, what: str = "the condition", interval: float = 0.01
) -> Literal[True]:
    """Poll ``predicate`` until it is truthy; fail the test with ``what`` after ``timeout`` seconds.

    Returns True, so ``assert wait_until(...)`` reads naturally; never returns False.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
    return True


async def async_wait_until(
    predicate: Callable[[], object | Awaitable[object]],
    timeout: float = 10.0,
    *,
    what: str = "the condition",
    interval: float = 0.01,
) -> Literal[True]:
    """:func:`wait_until` for async tests: yields to the loop between polls; ``predicate`` may be async."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return True
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def brokers_required() -> bool:
    """Under CI (``CI=true``) or ``STREAMLL_REQUIRE_BROKERS=1`` a missing broker fails the run."""
    truthy = ("1", "true", "yes")
    return os.environ.get(REQUIRE_ENV, "").lower() in truthy or os.environ.get("CI", "").lower() in truthy


ALLOWED_IN_CI = "allowed in CI: "
"""Prefix of a skip reason the CI rule lets through (see :func:`allowed_skip`); any other skip fails under CI."""
ABSENT_PLUGINS_ENV = "STREAMLL_TEST_ABSENT_PLUGINS"
"""Plugins a nox session deliberately leaves out (comma-separated): their tests skip even under CI."""


def running_in_ci() -> bool:
    """``CI`` is set to a true value: no test may skip (conftest turns a skip into a failure)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(message: str) -> NoReturn:
    """Skip on a laptop that lacks something; fail under CI (or ``STREAMLL_REQUIRE_BROKERS=1``), which must have it."""
    if brokers_required():
        pytest.fail(message + f" (required: CI or {REQUIRE_ENV} is set)", pytrace=False)
    pytest.skip(message)


def allowed_skip(reason: str) -> NoReturn:
    """A skip that is right even in CI (a DSPy line without the feature, a deliberately absent plugin)."""
    pytest.skip(ALLOWED_IN_CI + reason)


def require_module(name: str, why: str = "") -> Any:
    """``pytest.importorskip`` that fails under CI instead of skipping."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        problem = f"{name} is not importable ({exc}){': ' + why if why else ''}"
    skip_or_fail(problem)


def require_plugin(name: str) -> None:
    """Skip when the session leaves the ``streamll-NAME`` plugin out on purpose; otherwise it must be installed."""
    if importlib.util.find_spec(f"streamll_{name}") is not None:
        return
    if name in os.environ.get(ABSENT_PLUGINS_ENV, "").split(","):
        allowed_skip(f"this session runs without the {name} plugin")
    skip_or_fail(f"the {name} plugin (streamll-{name}) is not installed")


def require_executable(name: str, why: str = "") -> str:
    """Full path of ``name``; skip (laptop) or fail (CI) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        skip_or_fail(f"{name} is not installed{': ' + why if why else ''}")
    assert path is not None
    return path


def broker_unavailable(name: str, why: str) -> NoReturn:
    """Fail (CI) or skip (a laptop without the broker)."""
    skip_or_fail(f"{name} broker unavailable: {why}")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def url_reachable(url: str, default_port: int) -> bool:
    """True when the host:port of ``url`` accepts connections."""
    parts = urlsplit(url)
    first = (parts.netloc.rsplit("@", 1)[-1]).split(",")[0]
    host, _, port = first.rpartition(":") if ":" in first else (first, "", str(default_port))
    return port_open(host or "127.0.0.1", int(port or default_port))


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 20.0) -> bool:
    """Wait until host:port accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port, timeout=0.2):
            return True
        time.sleep(0.02)
    return False


class BrokerProcess:
    """A broker started for the tests on a free port; ``restart()`` simulates an outage."""

    def __init__(self, name: str, command: Sequence[str], port: int, *, workdir: Path | None = None) -> None:
        self.name = name
        self.command = list(command)
        self.port = port
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available(executable: str) -> str | None:
        """Full path of ``executable`` if installed."""
        return shutil.which(executable)

    def start(self, timeout: float = 30.0) -> BrokerProcess:
        """Start and wait until the port accepts connections."""
        self.process = subprocess.Popen(
            self.command, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if not wait_for_port("127.0.0.1", self.port, timeout):
            self.stop()
            raise RuntimeError(f"{self.name} did not listen on port {self.port} within {timeout}s: {self.command}")
        return self

    def stop(self) -> None:
        """Terminate the process and wait for the port to close."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None
        deadline = time.monotonic() + 10
        while port_open("127.0.0.1", self.port, 0.1) and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self) -> None:
        """Stop, then start again on the same port."""
        self.stop()
        self.start()


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``streamll ARGS`` in a fresh interpreter (as a user would), capturing its output."""
    import sys

    environment = {**os.environ, **(env or {})}
    command = [sys.executable, "-m", "streamll.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *expected: str) -> str:
    """The command failed with exit status 1 and exactly one line on stderr holding each of ``expected``."""
    lines = done.stderr.splitlines()
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert len(lines) == 1, done.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    assert "Traceback" not in done.stderr
    return lines[0]


EXIT_PROGRAM = """
import time
import streamll
for index in range(5):
    streamll.emit("token", {"token": f"t{index}", "field": "answer", "token_index": index})
print(time.monotonic(), flush=True)
"""


def exit_with_sinks(url: str, exit_timeout: float = 15) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run a program that emits 5 events to ``url`` (STREAMLL_SINKS) and exits.

    Returns the seconds from the end of the program's code to the end of the process (the exit drain;
    the system-wide monotonic clock is shared by both processes) and the result.
    """
    import sys

    environment = {**os.environ, "STREAMLL_SINKS": url, "STREAMLL_EXIT_TIMEOUT": str(exit_timeout)}
    done = subprocess.run(
        [sys.executable, "-c", EXIT_PROGRAM], capture_output=True, text=True, timeout=90, env=environment
    )
    ended = time.monotonic()
    return ended - float(done.stdout.split()[0]), done
