"""Privacy controls: @instrument(include_inputs, include_outputs) and configure(redact=...), on DSPy's real path."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import dspy
import pytest
import streamll
from streamll.core import policy
from streamll.core.events import Event, TokenEvent
from streamll.core.serialization import encode_event
from streamll.sinks.memory import MemorySink
from streamll.testing import OfflineLMServer

SECRET = "patient Jane Roe, born 1970-01-01"
DIAGNOSIS = "Seasonal allergies confirmed by history."


@pytest.fixture
def server(lm_server: OfflineLMServer) -> Iterator[OfflineLMServer]:
    lm_server.reset()
    lm_server.configure(answers={"diagnosis": DIAGNOSIS, "advice": "Rest and drink water."})
    yield lm_server
    lm_server.reset()


def run(server: OfflineLMServer, module: dspy.Module, sink: MemorySink) -> dspy.Prediction:
    with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
        result = module(question=f"What does {SECRET} have?")
    assert streamll.flush(timeout=10)
    assert sink.wait_for(lambda events: any(e.event_type == "end" and e.operation == "module" for e in events))
    return result


def wire(events: list[Event]) -> bytes:
    return b"\n".join(encode_event(event) for event in events)


def make_module(**options: Any) -> dspy.Module:
    @streamll.instrument(stream_fields=["diagnosis", "advice"], **options)
    class Triage(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("question -> diagnosis, advice")

        def forward(self, question: str) -> dspy.Prediction:
            return self.predict(question=question)

    return Triage()


def test_by_default_inputs_and_outputs_are_in_the_module_events(server: OfflineLMServer) -> None:
    sink = MemorySink(name="privacy-default")
    streamll.configure(sinks=[sink])
    run(server, make_module(), sink)
    start = next(e for e in sink.events if e.event_type == "start" and e.operation == "module")
    end = next(e for e in sink.events if e.event_type == "end" and e.operation == "module")
    assert SECRET in start.data["inputs"]["question"]
    assert end.data["outputs"]["diagnosis"] == DIAGNOSIS


def test_include_inputs_and_outputs_false_keep_them_out_of_every_event(server: OfflineLMServer) -> None:
    sink = MemorySink(name="privacy-off")
    streamll.configure(sinks=[sink])
    result = run(server, make_module(include_inputs=False, include_outputs=False), sink)
    assert result.diagnosis == DIAGNOSIS  # the program's result is untouched
    start = next(e for e in sink.events if e.event_type == "start" and e.operation == "module")
    end = next(e for e in sink.events if e.event_type == "end" and e.operation == "module")
    assert "inputs" not in start.data and "outputs" not in end.data
    assert SECRET.encode() not in wire(sink.events)
    assert sink.text("diagnosis") == DIAGNOSIS  # chosen fields still stream


def test_redact_drops_the_tokens_of_one_field_and_scrubs_the_rest(server: OfflineLMServer) -> None:
    def redact(event: Event) -> Event | None:
        if isinstance(event, TokenEvent) and event.field == "diagnosis":
            return None
        if "inputs" in event.data:
            event.data["inputs"] = "[redacted]"
        outputs = event.data.get("outputs")
        if isinstance(outputs, dict) and "diagnosis" in outputs:
            event.data["outputs"] = {**outputs, "diagnosis": "[redacted]"}
        return event

    sink = MemorySink(name="privacy-redact")
    before = policy.stats().redacted
    streamll.configure(sinks=[sink], redact=redact)
    result = run(server, make_module(), sink)
    assert result.diagnosis == DIAGNOSIS
    assert sink.tokens("diagnosis") == []
    assert sink.text("advice") == "Rest and drink water."
    payload = wire(sink.events)
    assert SECRET.encode() not in payload and DIAGNOSIS.encode() not in payload
    assert policy.stats().redacted - before == len(DIAGNOSIS.split(" "))  # one dropped event per token


def test_redact_can_rewrite_token_text_through_the_attribute() -> None:
    sink = MemorySink(name="privacy-token")

    def mask(event: Event) -> Event:
        if isinstance(event, TokenEvent):
            event.token = "*" * len(event.token)
        return event

    streamll.configure(sinks=[sink], redact=mask)
    streamll.emit("token", token="Jane", token_index=0, field="answer", cls=TokenEvent)
    assert streamll.flush(timeout=10) and sink.wait_for(lambda events: len(events) == 1)
    (event,) = sink.events
    assert b'"token":"****"' in encode_event(event)  # the wire reads data["token"]


def test_redact_also_covers_sinks_given_to_instrument(server: OfflineLMServer) -> None:
    own = MemorySink(name="privacy-own")
    streamll.configure(redact=lambda event: None if event.event_type == "token" else event)
    run(server, make_module(sinks=[own]), own)
    assert own.tokens() == []


def test_a_raising_redact_hook_keeps_the_event_in_and_never_breaks_the_program(
    server: OfflineLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    sink = MemorySink(name="privacy-broken")

    def broken(event: Event) -> Event:
        raise ValueError("bug in redaction")

    before = policy.stats().redact_errors
    streamll.configure(sinks=[sink], redact=broken)
    with caplog.at_level(logging.ERROR, logger="streamll"):
        with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
            result = make_module()(question=SECRET)
        assert streamll.flush(timeout=10)
    assert result.diagnosis == DIAGNOSIS
    assert sink.events == []  # fails closed: nothing unredacted left the process
    assert policy.stats().redact_errors - before > 0
    assert "the redact hook raised ValueError: bug in redaction" in caplog.text
