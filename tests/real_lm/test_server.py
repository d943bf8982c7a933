"""LocalModelServer's lifecycle and llama.cpp's own stream, as a user of streamll.testing relies on them."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from streamll.testing import LocalModelServer, LocalModelUnavailable


def accepts(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=0.5):
            return True
    except OSError:
        return False


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_start_answers_at_once_and_stop_frees_port_and_process() -> None:
    server = LocalModelServer().start()
    base, pid = server.base_url, server.pid
    assert base is not None and pid is not None
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
            assert response.status == 200
    finally:
        server.stop()
    assert not server.running and server.base_url is None
    assert not accepts(base)
    assert not process_alive(pid)
    server.stop()  # idempotent


def test_stream_is_llama_cpp_chunks_one_token_each(local_model: LocalModelServer) -> None:
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": "Count: one, two, three,"}],
        "stream": True,
        "max_tokens": 8,
        "temperature": 0,
    }
    request = urllib.request.Request(
        f"{local_model.api_base}/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        lines = [line.decode().strip() for line in response if line.strip()]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    contents = [c["choices"][0]["delta"].get("content") for c in chunks if c.get("choices")]
    assert len([text for text in contents if text]) == 8  # max_tokens=8: one chunk per token
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_a_file_that_is_not_a_model_fails_fast_with_the_log(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"not a model")
    started = time.monotonic()
    with pytest.raises(
        LocalModelUnavailable, match=r"did not start \(exit code \d+\): RuntimeError: Failed to init server.*\[log: "
    ):
        LocalModelServer(bogus).start()
    assert time.monotonic() - started < 30


def test_the_log_is_removed_after_a_clean_run() -> None:
    with LocalModelServer() as server:
        log = server.log_path
        assert log is not None and log.exists()
    assert not log.exists()
