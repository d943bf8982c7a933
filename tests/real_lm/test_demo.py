"""`streamll demo` answers the question asked, from the real model, and says so."""

from __future__ import annotations

import json

import streamll
from click.testing import CliRunner
from streamll.cli import main

CANNED = "Machine learning is a subset of artificial intelligence."


def test_demo_streams_a_real_answer_to_the_question() -> None:
    streamll.configure(sinks=None)
    result = CliRunner().invoke(main, ["demo", "--question", "Why is the sky blue?"])
    assert result.exit_code == 0, result.output
    assert "model: SmolLM2-135M-Instruct, local" in result.stderr
    assert "canned" not in result.stderr
    tokens = [line for line in result.stdout.splitlines() if line.startswith("[TOKEN] answer: ")]
    answer = "".join(json.loads(line.split(": ", 1)[1]) for line in tokens)
    assert len(tokens) > 1
    assert f"\nanswer: {answer}\n" in result.stderr
    assert answer != CANNED
    assert "sky" in answer.lower() or "blue" in answer.lower()  # about what was asked
