"""``streamll tail URL --live``: the fields of an execution drawn in place, not one line per token."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from streamll.core.events import StartEvent, TokenEvent
from streamll.live_view import LiveView
from streamll_redis import RedisSink
from streamll_redis.executions import execution_key
from streamll_redis.url import parse_redis_url

from tests.web.support import Producer


def test_the_view_grows_fields_and_ignores_repeats() -> None:
    view = LiveView()
    view.update(StartEvent(execution_id="e1", sequence=0, operation="execution", module_name="execution"))
    for sequence, token in enumerate(["Machine", " learning", " is"], start=1):
        view.update(TokenEvent(execution_id="e1", sequence=sequence, field="answer", token=token))
    view.update(TokenEvent(execution_id="e1", sequence=2, field="answer", token=" learning"))  # a retried write
    assert view.executions["e1"].fields == {"answer": "Machine learning is"}
    assert view.executions["e1"].status == "running"


@pytest.fixture
def sink(redis_source: str) -> Iterator[RedisSink]:
    sink = RedisSink(redis_source)
    yield sink
    sink.stop(timeout=5)


@pytest.mark.redis
def test_tail_live_shows_the_final_text_of_each_field(redis_source: str, sink: RedisSink, slow_lm: Any) -> None:
    producer = Producer(sink, slow_lm).start()
    prediction = producer.join()
    client = redis.Redis.from_url(redis_source.split("?")[0])
    total = client.xlen(execution_key(parse_redis_url(redis_source).stream, producer.execution_id))
    client.close()
    command = [sys.executable, "-m", "streamll.cli", "tail", redis_source, "--live", "--from-beginning"]
    command += ["--execution", producer.execution_id, "--count", str(total)]
    env = {**os.environ, "COLUMNS": "400", "LINES": "200"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())  # panels may wrap: compare word by word
    assert " ".join(prediction.answer.split()) in out
    assert " ".join(prediction.reasoning.split()) in out
    assert "finished" in out and "[TOKEN]" not in out

    plain = subprocess.run(
        [part for part in command if part != "--live"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert plain.returncode == 0 and plain.stdout.count("[TOKEN]") > 10, "the line format stays the default"
