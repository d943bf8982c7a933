"""The redaction hook and the event filter: exact one-line reports, exact counts, tokens kept in step."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import streamll
from streamll.core import policy
from streamll.core.events import Event, TokenEvent
from streamll.errors import ConfigurationError
from streamll.sinks.memory import MemorySink


@pytest.fixture
def sink() -> Iterator[MemorySink]:
    memory = MemorySink(name="policy")
    yield memory
    streamll.configure(sinks=None, redact=None, event_filter=None)
    memory.stop()


def emit_token(text: str) -> None:
    streamll.emit("token", {"token": text, "token_index": 0, "field": "answer"})


def test_a_raising_hook_is_one_line_and_one_count_per_event(sink: MemorySink, caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: Event) -> Event:
        raise KeyError("policy-test-raise")

    streamll.configure(sinks=[sink], redact=broken)
    before = policy.stats()
    with caplog.at_level(logging.ERROR, logger="streamll"):
        streamll.emit("custom", {"n": 1})
        streamll.emit("custom", {"n": 2})
    after = policy.stats()
    assert (after.redact_errors - before.redact_errors, after.redacted - before.redacted) == (2, 0)
    assert (
        caplog.messages.count("streamll: the redact hook raised KeyError: 'policy-test-raise'; the event was not sent")
        == 1
    )  # once per distinct message
    assert sink.events == []


def test_a_hook_returning_something_else_is_reported_with_its_type(
    sink: MemorySink, caplog: pytest.LogCaptureFixture
) -> None:
    streamll.configure(sinks=[sink], redact=lambda event: bytearray(b"policy-test"))
    before = policy.stats().redact_errors
    with caplog.at_level(logging.ERROR, logger="streamll"):
        streamll.emit("custom", {"n": 1})
    assert policy.stats().redact_errors - before == 1
    assert (
        "streamll: the redact hook returned <class 'bytearray'>, not an event or None; the event was not sent"
        in caplog.messages
    )
    assert sink.events == []


def test_a_hook_returning_none_keeps_the_event_in_and_counts_it(sink: MemorySink) -> None:
    streamll.configure(sinks=[sink], redact=lambda event: None if event.event_type == "secret" else event)
    before = policy.stats()
    streamll.emit("secret", {"n": 1})
    kept = streamll.emit("public", {"n": 2})
    assert streamll.flush(5)
    after = policy.stats()
    assert (after.redacted - before.redacted, after.redact_errors - before.redact_errors) == (1, 0)
    assert [event.event_id for event in sink.events] == [kept.event_id]


@pytest.mark.parametrize("how", ["attribute", "data", "not-a-string"])
def test_a_token_changed_either_way_is_changed_in_both_places(sink: MemorySink, how: str) -> None:
    def redact(event: Event) -> Event:
        if isinstance(event, TokenEvent):
            if how == "attribute":
                event.token = "[hidden]"
            elif how == "data":
                event.data["token"] = "[hidden]"
            else:
                event.data["token"] = 42
        return event

    streamll.configure(sinks=[sink], redact=redact)
    emit_token("secret")
    assert streamll.flush(5)
    (token,) = sink.of_type("token")
    assert isinstance(token, TokenEvent)
    expected = "" if how == "not-a-string" else "[hidden]"
    assert token.token == token.data["token"] == expected
    assert token.to_json().count(b"secret") == 0


def test_an_untouched_token_is_sent_as_it_was(sink: MemorySink) -> None:
    streamll.configure(sinks=[sink], redact=lambda event: event)
    emit_token("plain")
    assert streamll.flush(5)
    (token,) = sink.of_type("token")
    assert isinstance(token, TokenEvent) and token.token == token.data["token"] == "plain"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (5, r"^event_filter must be a set of event types, got 5$"),
        ("token", r"^event_filter must be a set of event types, e\.g\. \{'token'\}, not a single string$"),
        ({"token", ""}, r"^event_filter must hold event type names, got ''$"),
        ([3], r"^event_filter must hold event type names, got 3$"),
    ],
)
def test_a_bad_event_filter_is_one_clear_error(value: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        streamll.configure(event_filter=value)  # type: ignore[arg-type]


def test_rules_configured_for_a_block_are_gone_after_it(monkeypatch: pytest.MonkeyPatch, sink: MemorySink) -> None:
    """In a process where no rules were ever set, a ``with configure(event_filter=...)`` block leaves none behind."""
    monkeypatch.setattr(policy, "_policy", None)  # no rules configured yet in this process
    with streamll.configure(sinks=[sink], event_filter={"kept"}):
        streamll.emit("kept")
        streamll.emit("dropped")
    assert policy.current() is None  # no rules: one global read per event
    with streamll.configure(sinks=[sink]):
        streamll.emit("dropped")
        assert sink.flush(5)
    assert [event.event_type for event in sink.events] == ["kept", "dropped"]
