"""`streamll tail URL` prints events read back from a transport."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner
from streamll.cli import main
from streamll.errors import ConfigurationError
from streamll.testing.contract import make_execution_events, write

from tests.helpers import assert_one_line_error, free_port, run_cli

from .conftest import with_query

pytestmark = pytest.mark.redis


def test_tail_prints_readable_lines_and_wire_json(
    redis_url: str, stream_key: str, make_sink: Callable[..., Any]
) -> None:
    url = with_query(redis_url, stream=stream_key)
    execution, events = make_execution_events(3)
    write(make_sink(url), events)

    readable = CliRunner().invoke(main, ["tail", url, "--from-beginning", "--count", "5"])
    assert readable.exit_code == 0, readable.output
    assert readable.stdout.splitlines() == [
        "[START] QA",
        '[TOKEN] answer: " tok0"',
        '[TOKEN] answer: " tok1"',
        '[TOKEN] answer: " tok2"',
        "[END] QA (1 ms)",
    ]

    tokens_only = CliRunner().invoke(
        main, ["tail", url, "--from-beginning", "--type", "token", "--count", "3", "--json"]
    )
    assert tokens_only.exit_code == 0, tokens_only.output
    bodies = [json.loads(line) for line in tokens_only.stdout.splitlines()]
    assert [body["data"]["token"] for body in bodies] == [" tok0", " tok1", " tok2"]
    assert {body["execution_id"] for body in bodies} == {execution.execution_id}


def test_tail_with_a_group_acks_what_it_printed(redis_url: str, stream_key: str, make_sink: Callable[..., Any]) -> None:
    url = with_query(redis_url, stream=stream_key)
    _, events = make_execution_events(2)
    write(make_sink(url), events)
    first = CliRunner().invoke(main, ["tail", url, "--from-beginning", "--group", "cli", "--count", "2"])
    rest = CliRunner().invoke(main, ["tail", url, "--from-beginning", "--group", "cli", "--count", "2", "--json"])
    assert first.exit_code == 0 and rest.exit_code == 0, first.output + rest.output
    assert [json.loads(line)["event_id"] for line in rest.stdout.splitlines()] == [e.event_id for e in events[2:]]


def test_tail_errors_are_one_line_with_what_where_and_what_to_do(
    private_redis: Callable[..., Any],
) -> None:
    refused = free_port()
    line = assert_one_line_error(
        run_cli("tail", f"redis://:hunter2@127.0.0.1:{refused}/0"),
        "streamll tail: connection refused by",
        f"redis://:***@127.0.0.1:{refused}/0",
        "is the server running",
    )
    assert "hunter2" not in line

    server = private_redis("--requirepass", "s3cret-pass")
    for url in (f"redis://:wrong-pass@127.0.0.1:{server.port}/0", f"redis://127.0.0.1:{server.port}/0"):
        line = assert_one_line_error(run_cli("tail", url), "rejected the credentials", "check the user, password")
        assert "wrong-pass" not in line

    for url, expected in [
        ("redis://localhost:port", "streamll tail: redis URL 'redis://localhost:port' has an invalid port"),
        ("localhost:6379", "streamll tail: expected a URL like 'redis://localhost:6379', got 'localhost:6379'"),
        ("mqtt://host", "streamll tail: no consumer for URL scheme 'mqtt'"),
    ]:
        result = CliRunner().invoke(main, ["tail", url])
        assert result.exit_code == 1 and result.stdout == "", result.output
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(expected), result.stderr


def test_tail_debug_shows_the_traceback() -> None:
    done = run_cli("tail", f"redis://127.0.0.1:{free_port()}/0", "--debug")
    assert done.returncode != 0 and "Traceback" in done.stderr and "ConnectionError" in done.stderr
    result = CliRunner().invoke(main, ["--debug", "tail", "redis://localhost:port"])
    assert isinstance(result.exception, ConfigurationError)  # raised, so the interpreter prints the traceback
