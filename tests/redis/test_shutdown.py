"""SIGTERM and exit, in real processes against real Redis servers.

``docker stop`` and Kubernetes stop a process with SIGTERM: queued events are
drained first and the process still ends as SIGTERM ends it. A destination
that never accepted a connection does not hold the exit for the whole timeout.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.helpers import free_port
from tests.redis.conftest import PrivateRedis

pytestmark = pytest.mark.redis

PROGRAM = textwrap.dedent(
    """
    import os, signal, sys, time
    import streamll
    from streamll_redis import RedisSink

    if os.environ.get("USER_HANDLER"):
        def on_term(signum, frame):
            print("user handler ran", flush=True)
            delivered = streamll.flush(timeout=10)
            print(f"flushed={delivered}", flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, on_term)

    options = {}
    if os.environ.get("SPILL_PATH"):
        options = {"overflow": "spill", "spill_path": os.environ["SPILL_PATH"], "buffer_size": 10}
    sink = RedisSink(os.environ["URL"], stream="jobs", **options)
    streamll.configure(sinks=[sink])
    count = int(os.environ["COUNT"])
    for index in range(count):
        streamll.emit("token", {"token": f"t{index}", "field": "answer", "token_index": index})
    print("ready", flush=True)
    if os.environ.get("EXIT_NOW"):
        sys.exit(0)
    while True:
        time.sleep(0.1)
    """
)


def start_program(tmp_path: Path, url: str, count: int, **env: str) -> subprocess.Popen[str]:
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    environment = {**os.environ, "URL": url, "COUNT": str(count), "STREAMLL_EXIT_TIMEOUT": "15", **env}
    environment.pop("STREAMLL_SINKS", None)
    process = subprocess.Popen(
        [sys.executable, str(script)], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "ready", line + process.stderr.read()
    return process


def finish(process: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr


def tokens_in(url: str) -> list[str]:
    client = redis.Redis.from_url(url)
    try:
        import json

        return [json.loads(fields[b"data"])["data"]["token"] for _, fields in client.xrange("jobs")]
    finally:
        client.close()


def test_sigterm_drains_queued_events_then_ends_the_process_by_sigterm(
    tmp_path: Path, private_redis: Callable[..., PrivateRedis]
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    process = start_program(tmp_path, url, 200)  # nothing listens yet: every event is queued
    server = PrivateRedis()
    server.port, server.command[server.command.index("--port") + 1] = port, str(port)
    server.start()
    try:
        process.send_signal(signal.SIGTERM)
        status, _, stderr = finish(process)
        assert status == -signal.SIGTERM, stderr
        assert tokens_in(url) == [f"t{index}" for index in range(200)], stderr
    finally:
        server.stop()


def test_a_program_with_its_own_sigterm_handler_keeps_it_and_is_told_how_to_flush(
    tmp_path: Path, private_redis: Callable[..., PrivateRedis]
) -> None:
    server = private_redis()
    process = start_program(tmp_path, server.url, 50, USER_HANDLER="1")
    process.send_signal(signal.SIGTERM)
    status, stdout, stderr = finish(process)
    assert status == 3, stderr
    assert stdout.splitlines() == ["user handler ran", "flushed=True"]
    assert stderr.count("streamll.flush(timeout=5)") == 1, stderr
    assert len(tokens_in(server.url)) == 50


def test_spill_keeps_what_it_accepted_across_a_sigterm_with_the_destination_down(
    tmp_path: Path, private_redis: Callable[..., PrivateRedis]
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    spill = tmp_path / "spill.jsonl"
    process = start_program(tmp_path, url, 100, SPILL_PATH=str(spill))  # 10 in memory, 90 in the file
    process.send_signal(signal.SIGTERM)
    status, _, stderr = finish(process)
    assert status == -signal.SIGTERM, stderr
    assert "100 event(s) remain in spill file" in stderr, stderr
    assert len(spill.read_bytes().splitlines()) == 100

    server = PrivateRedis()
    server.port, server.command[server.command.index("--port") + 1] = port, str(port)
    server.start()
    try:  # the next run with the same spill file delivers them first, in order
        status, _, stderr = finish(start_program(tmp_path, url, 0, SPILL_PATH=str(spill), EXIT_NOW="1"))
        assert status == 0, stderr
        assert tokens_in(url) == [f"t{index}" for index in range(100)]
    finally:
        server.stop()


def test_exit_with_a_destination_that_refuses_connections_is_quick_and_says_so(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://:hunter2@127.0.0.1:{port}/0"
    program = start_program(tmp_path, url, 5, EXIT_NOW="1")  # returns once the program's code is done
    started = time.monotonic()
    status, _, stderr = finish(program)
    elapsed = time.monotonic() - started
    assert status == 0, stderr
    assert elapsed < 5, f"the exit drain took {elapsed:.1f}s with STREAMLL_EXIT_TIMEOUT=15"
    assert f"connection refused to redis://:***@127.0.0.1:{port}/0" in stderr, stderr
    assert "stopped with 5 undelivered event(s)" in stderr
    assert "held a write" not in stderr and "hunter2" not in stderr


def test_exit_with_a_destination_that_never_answers_names_what_was_pending(tmp_path: Path) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # connections complete in the kernel; nothing ever reads or answers
    port = silent.getsockname()[1]
    try:
        process = start_program(tmp_path, f"redis://127.0.0.1:{port}/0", 5, EXIT_NOW="1", STREAMLL_EXIT_TIMEOUT="2")
        started = time.monotonic()
        status, _, stderr = finish(process)
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert status == 0, stderr
    assert elapsed < 10, f"exit took {elapsed:.1f}s with STREAMLL_EXIT_TIMEOUT=2"
    assert "was still pending" in stderr and f"redis://127.0.0.1:{port}/0" in stderr, stderr
    assert "stopped with 5 undelivered event(s)" in stderr, stderr
