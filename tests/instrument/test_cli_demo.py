"""`streamll demo` streams a ChainOfThought answer to the terminal from the offline server, and says it is canned."""

from __future__ import annotations

import json

import streamll
from click.testing import CliRunner
from streamll.cli import main


def test_demo_streams_tokens_of_reasoning_and_answer_to_the_terminal() -> None:
    streamll.configure(sinks=None)
    result = CliRunner().invoke(main, ["demo", "--offline", "--token-delay", "0", "--question", "What is ML?"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    tokens = [line for line in lines if line.startswith("[TOKEN] ")]
    answer = "".join(json.loads(line.split(": ", 1)[1]) for line in tokens if line.startswith("[TOKEN] answer:"))
    reasoning = [line for line in tokens if line.startswith("[TOKEN] reasoning:")]
    assert answer == "Machine learning is a subset of artificial intelligence."
    assert len(reasoning) > 5
    assert lines[0] == "[START] module ReasoningQA"
    assert f"answer (canned): {answer}" in result.stderr
    assert "the answer is canned (the same for any question)" in result.stderr


def test_demo_with_a_configured_sink_url(monkeypatch) -> None:
    result = CliRunner().invoke(
        main, ["demo", "--offline", "--token-delay", "0", "--sink", "memory://demo-test", "--adapter", "json"]
    )
    assert result.exit_code == 0, result.output
    sink = streamll.MemorySink.named("demo-test")
    assert sink.text("answer") == "Machine learning is a subset of artificial intelligence."
    assert "[TOKEN]" not in result.stdout
    streamll.configure(sinks=None)
    sink.stop()


def test_demo_without_the_local_model_says_the_answer_is_canned_and_why(monkeypatch) -> None:
    monkeypatch.setenv("STREAMLL_LOCAL_MODEL", "/nonexistent/model.gguf")
    streamll.configure(sinks=None)
    result = CliRunner().invoke(main, ["demo", "--token-delay", "0", "--question", "Why is the sky blue?"])
    assert result.exit_code == 0, result.output
    (notice,) = [line for line in result.stderr.splitlines() if line.startswith("model: ")]
    assert notice.startswith("model: none, the answer is canned (the same for any question)")
    reasons = ("the local model server is not installed (xllamacpp)", "STREAMLL_LOCAL_MODEL='/nonexistent/model.gguf'")
    assert any(reason in notice for reason in reasons), notice  # which one depends on the installed extra
    assert "answer (canned): Machine learning is a subset of artificial intelligence." in result.stderr
