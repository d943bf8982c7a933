"""Helpers for the relay tests: relay processes (real uvicorn), an SSE reader, and an instrumented producer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dspy
import httpx
import streamll

from tests.helpers import free_port


class RelayProcess:
    """``streamll serve SOURCE`` in its own process on a free port (restartable on the same port)."""

    def __init__(
        self, source: str, *, secret: str | None = None, port: int | None = None, heartbeat: float | None = None
    ) -> None:
        self.source = source
        self.heartbeat = heartbeat
        self.secret = secret
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> RelayProcess:
        """Start and wait until the relay answers."""
        env = dict(os.environ)
        command = [sys.executable, "-m", "streamll.cli", "serve", self.source, "--port", str(self.port)]
        if self.heartbeat is not None:
            command += ["--heartbeat", str(self.heartbeat)]
        if self.secret is not None:
            env["STREAMLL_TEST_RELAY_SECRET"] = self.secret
            command += ["--secret-env", "STREAMLL_TEST_RELAY_SECRET"]
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"relay exited: {self.process.stderr.read().decode() if self.process.stderr else ''}"
                )
            try:
                if httpx.get(self.base + "/", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"relay on port {self.port} did not answer within {timeout}s")

    def stop(self) -> None:
        """Kill the process (as a crash would) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@dataclass
class Frame:
    """One SSE message."""

    data: str
    id: str | None = None
    event: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SSEResult:
    frames: list[Frame] = field(default_factory=list)
    comments: int = 0
    ended: bool = False
    """True when the server closed the stream (False: we stopped reading)."""
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 0


def read_sse(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    stop_after: int | None = None,
    stop_when: Callable[[SSEResult], bool] | None = None,
    timeout: float = 60.0,
) -> SSEResult:
    """Read an SSE response; stop (dropping the connection) after ``stop_after`` frames or when ``stop_when``."""
    result = SSEResult()
    deadline = time.monotonic() + timeout
    with httpx.stream("GET", url, headers=headers or {}, timeout=httpx.Timeout(timeout, connect=5)) as response:
        result.status = response.status_code
        result.headers = dict(response.headers)
        if response.status_code != 200:
            response.read()
            result.frames.append(Frame(response.text))
            return result
        data: list[str] = []
        frame_id = event = None
        for line in response.iter_lines():
            if time.monotonic() > deadline:
                raise TimeoutError(f"SSE read from {url} took over {timeout}s")
            if line == "":
                if data:
                    result.frames.append(Frame("\n".join(data), frame_id, event))
                    if (stop_after is not None and len(result.frames) >= stop_after) or (
                        stop_when is not None and stop_when(result)
                    ):
                        return result
                data, frame_id, event = [], None, None
            elif line.startswith(":"):
                result.comments += 1
                if stop_when is not None and stop_when(result):
                    return result
            else:
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "data":
                    data.append(value)
                elif name == "id":
                    frame_id = value
                elif name == "event":
                    event = value
        result.ended = True
    return result


@streamll.instrument(stream_fields=["reasoning", "answer"])
class ReasoningQA(dspy.Module):
    """The program the relay tests stream: ChainOfThought with reasoning and answer streamed."""

    def __init__(self) -> None:
        super().__init__()
        self.cot = dspy.ChainOfThought("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.cot(question=question)


class Producer:
    """Runs :class:`ReasoningQA` in a background thread inside ``streamll.execution()`` with the given sink."""

    def __init__(
        self, sink: Any, lm: Any, question: str = "What is machine learning?", before: Callable[[], Any] | None = None
    ) -> None:
        self.before = before
        self.sink = sink
        self.lm = lm
        self.question = question
        self.run = streamll.execution(sinks=[sink])
        self.prediction: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    @property
    def execution_id(self) -> str:
        return self.run.execution_id

    def _main(self) -> None:
        try:
            with dspy.context(lm=self.lm, adapter=dspy.ChatAdapter()), self.run:
                if self.before is not None:
                    self.before()
                self.prediction = ReasoningQA()(question=self.question)
        except BaseException as exc:
            self.error = exc

    def start(self) -> Producer:
        self._thread.start()
        return self

    def join(self, timeout: float = 60.0) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the instrumented program did not finish"
        if self.error is not None:
            raise self.error
        assert self.sink.flush(timeout=10), "the sink did not deliver every event"
        return self.prediction


def streamed_text(events: list[dict[str, Any]], field_name: str) -> str:
    """The text of ``field_name`` rebuilt from token events."""
    return "".join(
        event["data"]["token"]
        for event in events
        if event["event_type"] == "token" and event["data"].get("field") == field_name
    )
