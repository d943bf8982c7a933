"""`streamll demo` with a Redis sink that cannot deliver: one line on stderr and exit status 1.

It lives with the Redis tests because it needs the Redis plugin installed, which the
DSPy-matrix sessions (core only) do not have.
"""

from __future__ import annotations

import streamll
from click.testing import CliRunner
from streamll.cli import main


def test_demo_whose_sink_cannot_deliver_says_so_in_one_line_and_fails() -> None:
    url = "redis://127.0.0.1:1/0"  # nothing listens on port 1: the connection is refused
    try:
        result = CliRunner().invoke(
            main, ["demo", "--offline", "--token-delay", "0", "--sink", url, "--flush-timeout", "0.5"]
        )
    finally:
        streamll.configure(sinks=None)
    assert result.exit_code == 1, result.output
    assert "answer (canned): Machine learning is a subset of artificial intelligence." in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert line.startswith("Error: events not delivered within 0.5 s: "), line
    assert "127.0.0.1:1" in line and "ConnectionError" in line, line
