"""examples/fastapi_app.py under a real uvicorn: POST starts a run, the relay streams it, the page shows it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import free_port, require_module
from tests.web.support import read_sse, streamed_text

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def example(redis_source: str) -> Iterator[str]:
    """The example app on a free port, writing to the test's Redis stream; its base URL."""
    require_module("fastapi", "the example app needs it")
    port = free_port()
    env = {**os.environ, "STREAMLL_URL": redis_source, "EXAMPLE_TOKEN_DELAY": "0.01"}
    env.pop("EXAMPLE_LM_MODEL", None)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "examples.fastapi_app:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else "exited"
            try:
                if httpx.get(base + "/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the example app did not start"
            time.sleep(0.1)
        yield base
    finally:
        process.kill()
        process.wait(timeout=10)


def module_outputs(events: list[dict[str, Any]]) -> dict[str, Any]:
    ends = [event for event in events if event["event_type"] == "end" and event["operation"] == "module"]
    return ends[-1]["data"]["outputs"]


def test_post_returns_the_id_at_once_and_the_relay_streams_the_run(example: str, browser: Any) -> None:
    started = httpx.post(example + "/ask", json={"question": "What is machine learning?"}, timeout=10)
    assert started.status_code == 200
    execution_id = started.json()["execution_id"]
    result = read_sse(f"{example}/streamll/executions/{execution_id}/events")
    assert result.ended
    events = [frame.json() for frame in result.frames]
    assert [event["sequence"] for event in events] == list(range(len(events)))
    outputs = module_outputs(events)
    assert streamed_text(events, "answer") == outputs["answer"]
    assert streamed_text(events, "reasoning") == outputs["reasoning"]

    page = browser.new_page()
    page.goto(example + "/")
    page.click("button")
    page.wait_for_function("() => document.getElementById('status').textContent === 'done'", timeout=60_000)
    assert page.inner_text("#answer") == outputs["answer"]  # same offline reply for the same question
    assert page.inner_text("#reasoning") == outputs["reasoning"]
    page.close()
