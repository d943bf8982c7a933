"""Which sinks events go to: the terminal default, configure(), STREAMLL_SINKS."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import streamll
from streamll.config import SINKS_ENV, active_sinks
from streamll.errors import ConfigurationError
from streamll.sinks.memory import MemorySink
from streamll.sinks.terminal import TerminalSink


@pytest.fixture(autouse=True)
def clean_configuration(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No STREAMLL_SINKS and no configure() before the test; the same afterwards."""
    monkeypatch.delenv(SINKS_ENV, raising=False)
    streamll.configure(sinks=None)
    yield
    streamll.configure(sinks=None)


def emit_tokens(*words: str, field: str = "answer") -> None:
    for index, word in enumerate(words):
        streamll.emit("token", data={"token": word, "token_index": index, "field": field})


def total_received() -> int:
    return sum(stats.received for stats in streamll.stats().values())


def test_without_configuration_tokens_are_printed_to_the_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    (default,) = active_sinks()
    assert isinstance(default, TerminalSink)
    emit_tokens("Machine", " learning", ' "quoted"')
    assert streamll.flush(timeout=10)
    assert capsys.readouterr().out.splitlines() == [
        '[TOKEN] answer: "Machine"',
        '[TOKEN] answer: " learning"',
        '[TOKEN] answer: " \\"quoted\\""',
    ]


def test_the_terminal_sink_prints_lifecycle_lines_and_can_print_only_tokens() -> None:
    import io

    everything, tokens_only = io.StringIO(), io.StringIO()
    sinks = [TerminalSink(everything), TerminalSink(tokens_only, tokens_only=True)]
    streamll.configure(sinks=sinks)
    try:
        with streamll.trace("retrieve") as span:
            emit_tokens("Hi")
            span.emit("hit", data={"doc": "d1"})
        with pytest.raises(ValueError), streamll.trace("fails"):
            raise ValueError("no answer")
        assert streamll.flush(timeout=10)
    finally:
        streamll.configure(sinks=None)
        for sink in sinks:
            sink.stop()
    lines = everything.getvalue().splitlines()
    assert lines[0] == "[START] trace retrieve"
    assert lines[1] == '[TOKEN] answer: "Hi"'
    assert lines[2] == '[HIT] trace retrieve ({"doc": "d1"})'
    assert lines[3].startswith("[END] trace retrieve (") and lines[3].endswith(" ms)")
    assert lines[5].startswith("[ERROR] trace fails (") and lines[5].endswith("ValueError: no answer)")
    assert tokens_only.getvalue().splitlines() == ['[TOKEN] answer: "Hi"']


class RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_the_terminal_sink_prints_any_data_users_emit() -> None:
    import io

    cycle: list[object] = []
    cycle.append(cycle)
    out = io.StringIO()
    sink = TerminalSink(out)
    streamll.configure(sinks=[sink])
    try:
        streamll.emit("timing", data={"duration_ms": "n/a"})
        streamll.emit("odd", data={"value": RaisingRepr(), "cycle": cycle})
        streamll.emit("lm_done", data={"duration_ms": None, "finish_reason": "stop"})
        assert streamll.flush(timeout=10)
    finally:
        streamll.configure(sinks=None)
        sink.stop()
    assert out.getvalue().splitlines() == [
        '[TIMING] ({"duration_ms": "n/a"})',
        '[ODD] ({"value": "<unrepresentable RaisingRepr>", "cycle": "[[...]]"})',
        '[LM_DONE] (finish_reason=stop, {"duration_ms": null, "finish_reason": "stop"})',
    ]
    assert sink.stats.failed == 0


def test_configure_with_no_sinks_sends_events_nowhere(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SINKS_ENV, "memory://config-nowhere")
    streamll.configure(sinks=[])
    assert active_sinks() == ()
    before = total_received()
    emit_tokens("Machine")
    streamll.emit("custom", data={"x": 1})
    assert streamll.flush(timeout=10)
    assert total_received() == before
    assert capsys.readouterr().out == ""
    assert MemorySink.named("config-nowhere").events == []


def test_streamll_sinks_env_var_selects_sinks(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SINKS_ENV, "memory://config-env, terminal://")
    emit_tokens("Machine")
    assert streamll.flush(timeout=10)
    memory = MemorySink.named("config-env")
    assert memory.wait_for(lambda events: len(events) == 1)
    assert memory.text("answer") == "Machine"
    assert capsys.readouterr().out == '[TOKEN] answer: "Machine"\n'


def test_configure_beats_the_environment(monkeypatch: pytest.MonkeyPatch, memory_sink: MemorySink) -> None:
    monkeypatch.setenv(SINKS_ENV, "memory://config-env-loser")
    streamll.emit("custom", data={"x": 1})
    assert streamll.flush(timeout=10)
    assert len(memory_sink.events) == 1
    assert MemorySink.named("config-env-loser").events == []


def test_configure_none_returns_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SINKS_ENV, "memory://config-env-again")
    streamll.configure(sinks=[])
    streamll.configure(sinks=None)
    streamll.emit("custom", data={"x": 1})
    assert MemorySink.named("config-env-again").wait_for(lambda events: len(events) == 1)


def test_a_bad_url_in_the_environment_is_logged_once_and_never_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(SINKS_ENV, "memory://config-env-ok,pigeon://user:s3cret@coop")
    with caplog.at_level(logging.ERROR, logger="streamll"):
        for index in range(3):
            streamll.emit("custom", data={"i": index})  # must not raise
    assert streamll.flush(timeout=10)
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert SINKS_ENV in errors[0] and "pigeon" in errors[0] and "s3cret" not in errors[0]
    assert [event.data["i"] for event in MemorySink.named("config-env-ok").events] == [0, 1, 2]


def test_a_bad_url_given_to_configure_raises() -> None:
    with pytest.raises(ConfigurationError):
        streamll.configure(sinks=["memory://config-fine", "pigeon://coop"])
    with pytest.raises(ConfigurationError):
        streamll.configure(sinks=["not a url"])
    assert isinstance(active_sinks()[0], TerminalSink)  # the configuration did not change


def test_configure_stops_the_sinks_it_built_from_urls_when_replaced() -> None:
    streamll.configure(sinks=["memory://config-owned"])
    owned = MemorySink.named("config-owned")
    assert owned.is_running
    streamll.emit("custom", data={"last": True})
    mine = MemorySink(name="config-mine")
    try:
        streamll.configure(sinks=[mine])
        assert not owned.is_running
        assert [event.data for event in owned.events] == [{"last": True}]  # drained before it stopped
        streamll.configure(sinks=None)
        assert mine.is_running  # sink objects you pass stay yours
    finally:
        mine.stop()


def test_configure_keeps_a_url_sink_it_is_given_again() -> None:
    streamll.configure(sinks=["memory://config-same"])
    sink = MemorySink.named("config-same")
    streamll.configure(sinks=["memory://config-same", "terminal://stderr"])
    assert sink.is_running
    assert active_sinks()[0] is sink


def test_streamll_sinks_with_no_usable_url_says_nothing_will_be_printed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(SINKS_ENV, "garbage")
    with caplog.at_level(logging.ERROR, logger="streamll"):
        emit_tokens("Machine")
    assert streamll.flush(timeout=10)
    assert active_sinks() == ()
    assert capsys.readouterr().out == ""
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 2, errors
    assert "'garbage'" in errors[0]
    assert "terminal default off" in errors[1] and "nothing will be printed" in errors[1]


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_streamll_sinks_counts_as_unset(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(SINKS_ENV, value)
    (default,) = active_sinks()
    assert isinstance(default, TerminalSink)


def test_streamll_sinks_none_sends_events_nowhere(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(SINKS_ENV, "none")
    with caplog.at_level(logging.WARNING, logger="streamll"):
        emit_tokens("Machine")
    assert active_sinks() == ()
    assert capsys.readouterr().out == "" and caplog.records == []
