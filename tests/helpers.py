"""Shared test plumbing: waiting on conditions, broker discovery, throwaway broker processes, CI rules."""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Literal
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


def broker_unavailable(name: str, why: str) -> None:
    """Fail (CI) or skip (a laptop without the broker)."""
    message = f"{name} broker unavailable: {why}"
    if brokers_required():
        pytest.fail(message + f" (brokers are required: CI or {REQUIRE_ENV} is set)", pytrace=False)
    pytest.skip(message)


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
