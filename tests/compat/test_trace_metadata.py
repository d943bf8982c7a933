"""streamll.trace(name, **metadata): the metadata is on every event inside the trace."""

from __future__ import annotations

import re

import dspy
import pytest
import streamll
import streamll.core.context
import streamll.core.spans
from streamll.core.events import Event
from streamll.sinks.memory import MemorySink
from streamll.testing import OfflineLMServer


def delivered(sink: MemorySink, count: int) -> list[Event]:
    assert streamll.flush(timeout=10)
    assert sink.wait_for(lambda events: len(events) >= count), sink.events
    return list(sink.events)


def test_metadata_is_in_the_tags_of_every_event_and_the_data_of_the_trace_own_events() -> None:
    sink = MemorySink(name="trace-meta")
    streamll.configure(sinks=[sink])
    streamll.set_context(request_id="r1")
    with streamll.trace("retrieval", source="wiki", user_tier="pro") as ctx:
        ctx.emit("docs_found", data={"count": 2})
        streamll.emit("custom")
        with streamll.trace("rerank", model="small"):
            pass
    streamll.emit("outside")
    events = delivered(sink, 7)
    inside, outside = events[:-1], events[-1]
    assert [e.event_type for e in inside] == ["start", "docs_found", "custom", "start", "end", "end"]
    for event in inside:
        assert event.tags["source"] == "wiki" and event.tags["user_tier"] == "pro"
        assert event.tags["request_id"] == "r1"
    assert inside[3].tags["model"] == "small" and "model" not in inside[5].tags
    start, found, _, _, _, end = inside
    assert start.data == {"source": "wiki", "user_tier": "pro"}
    assert found.data == {"source": "wiki", "user_tier": "pro", "count": 2}
    assert end.data["source"] == "wiki" and end.data["duration_ms"] >= 0
    assert outside.tags == {"request_id": "r1"}


def test_data_given_to_trace_wins_over_metadata_of_the_same_name() -> None:
    sink = MemorySink(name="trace-meta-data")
    streamll.configure(sinks=[sink])
    with streamll.trace("t", data={"k": "data"}, k="meta"):
        pass
    start, _end = delivered(sink, 2)
    assert start.data == {"k": "data"} and start.tags == {"k": "meta"}


def test_metadata_reaches_module_lm_and_token_events_inside(lm_server: OfflineLMServer) -> None:
    lm_server.reset()
    sink = MemorySink(name="trace-meta-dspy")
    streamll.configure(sinks=[sink])

    @streamll.instrument(stream_fields=["answer"])
    class QA(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("question -> answer")

        def forward(self, question: str) -> dspy.Prediction:
            return self.predict(question=question)

    with streamll.trace("request", tenant="acme"), dspy.context(lm=lm_server.lm(), adapter=dspy.ChatAdapter()):
        QA()(question="What is machine learning?")
    assert streamll.flush(timeout=10)
    assert sink.wait_for(lambda events: events[-1].event_type == "end" and events[-1].operation == "trace")
    events = list(sink.events)
    assert {e.operation for e in events} >= {"trace", "module", "lm"}
    assert sink.tokens("answer")
    assert all(e.tags.get("tenant") == "acme" for e in events), [e for e in events if "tenant" not in e.tags]


def test_reserved_keywords_keep_their_meaning_and_a_bad_value_leaves_the_context_alone() -> None:
    with pytest.raises(TypeError, match="trace data must be a dict"):
        streamll.trace("t", data="not a dict")  # type: ignore[arg-type]
    with pytest.raises(streamll.ConfigurationError, match="not a single string"):
        streamll.trace("t", sinks="memory://x")  # type: ignore[arg-type]
    span = streamll.core.spans.Span("trace", "t", data="not a dict")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        span.open()
    assert streamll.core.context.current_execution.get() is None
    assert streamll.core.context.current_span.get() is None


def test_0_1_module_name_keyword_warns_and_is_kept_as_metadata() -> None:
    sink = MemorySink(name="trace-module-name")
    streamll.configure(sinks=[sink])
    with pytest.warns(DeprecationWarning, match=re.escape("write streamll.trace('retriever')")):
        span = streamll.trace("retrieval", module_name="retriever")
    with span:
        pass
    start, _end = delivered(sink, 2)
    assert (start.module_name, start.operation) == ("retrieval", "trace")
    assert start.tags["module_name"] == "retriever"
