"""Lifecycle events, errors, and how the decorator treats bad input."""

from __future__ import annotations

import logging

import dspy
import pytest
import streamll
from streamll import MemorySink
from streamll.testing import OfflineLMServer


@streamll.instrument(stream_fields=["reasoning", "answer"])
class ReasoningQA(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cot = dspy.ChainOfThought("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.cot(question=question)


class PlainReasoningQA(dspy.Module):
    """ReasoningQA without streamll: what the user's program raises on its own."""

    def __init__(self) -> None:
        super().__init__()
        self.cot = dspy.ChainOfThought("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.cot(question=question)


def uninstrumented_error(question: str) -> Exception:
    """The exception the uninstrumented program raises against the server as configured now."""
    try:
        PlainReasoningQA()(question=question)
    except Exception as exc:
        return exc
    raise AssertionError("the program without streamll did not fail")


class Boom(RuntimeError):
    pass


@streamll.instrument(stream_fields=["answer"])
class Failing(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        self.predict(question=question)
        raise Boom("user code failed")

    async def aforward(self, question: str) -> dspy.Prediction:
        await self.predict.acall(question=question)
        raise Boom("user code failed")


def lifecycle(sink: MemorySink) -> list[tuple[str, str | None]]:
    assert streamll.flush(10)
    return [(e.event_type, e.operation) for e in sink.events if e.event_type != "token"]


def test_module_and_lm_events_carry_duration_finish_reason_and_usage(lm, memory_sink: MemorySink) -> None:
    prediction = ReasoningQA()(question="What is ML?")
    assert lifecycle(memory_sink) == [("start", "module"), ("start", "lm"), ("end", "lm"), ("end", "module")]
    module_start, lm_start, lm_end, module_end = memory_sink.of_type("start") + memory_sink.of_type("end")
    assert module_start.module_name == "ReasoningQA" and module_start.data["inputs"] == {"question": "What is ML?"}
    assert lm_start.data["model"] == "openai/offline"
    assert lm_end.data["finish_reason"] == "stop"
    assert lm_end.data["duration_ms"] > 0 and module_end.data["duration_ms"] >= lm_end.data["duration_ms"]
    usage = lm_end.data["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert module_end.data["outputs"]["answer"] == prediction.answer
    # parent links: lm events hang under the module span, tokens under the lm span
    assert lm_start.parent_id == module_start.event_id and module_start.parent_id is None
    assert {t.parent_id for t in memory_sink.tokens()} == {lm_start.event_id}
    sequences = [e.sequence for e in memory_sink.events]
    assert sequences == sorted(sequences) == list(range(len(sequences)))
    assert len({e.execution_id for e in memory_sink.events}) == 1
    assert len({e.event_id for e in memory_sink.events}) == len(memory_sink.events)


def test_user_exception_propagates_unchanged_after_an_error_event(lm, memory_sink: MemorySink) -> None:
    with pytest.raises(Boom, match="user code failed") as caught:
        Failing()(question="fail please")
    assert type(caught.value) is Boom
    assert lifecycle(memory_sink)[-1] == ("error", "module")
    error = memory_sink.of_type("error")[-1]
    assert error.data["error_type"] == "Boom" and error.data["error_message"] == "user code failed"
    assert memory_sink.text("answer"), "tokens streamed before the failure are delivered"


async def test_user_exception_propagates_unchanged_from_acall(lm, memory_sink: MemorySink) -> None:
    with pytest.raises(Boom):
        await Failing().acall(question="fail async")
    assert lifecycle(memory_sink)[-1] == ("error", "module")


def test_lm_failure_emits_lm_and_module_errors_and_raises_dspys_error(
    lm, server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    server.configure(fail_status=500)
    expected = uninstrumented_error("server down")  # dspy.LMError from 3.4, litellm's error before
    memory_sink.clear()
    with pytest.raises(type(expected)) as raised:
        ReasoningQA()(question="server down")
    assert type(raised.value) is type(expected) and str(raised.value) == str(expected)
    events = lifecycle(memory_sink)
    assert ("error", "lm") in events and events[-1] == ("error", "module")


def test_mid_stream_disconnect_closes_fields_and_reports(lm, server: OfflineLMServer, memory_sink: MemorySink) -> None:
    server.configure(disconnect_after=8)
    expected = uninstrumented_error("cut the wire")  # the transport error type differs per DSPy engine
    memory_sink.clear()
    with pytest.raises(type(expected)) as raised:
        ReasoningQA()(question="cut the wire")
    assert type(raised.value) is type(expected)
    assert streamll.flush(10)
    first_lm = next(e for e in memory_sink.events if e.operation == "lm")
    reasoning = [t for t in memory_sink.tokens("reasoning") if t.parent_id == first_lm.event_id]
    assert reasoning and reasoning[-1].finish_reason == "error"
    assert [e.token_index for e in reasoning] == list(range(len(reasoning)))


def test_instrumenting_something_else_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"dspy\.Module"):
        streamll.instrument(stream_fields=["answer"])(object)  # type: ignore[type-var]
    with pytest.raises(TypeError, match=r"dspy\.Module"):

        @streamll.instrument
        def not_a_class() -> None:  # type: ignore[misc]
            pass


def test_stream_fields_must_be_a_list_of_names() -> None:
    with pytest.raises(TypeError, match=r"\['answer'\]"):
        streamll.instrument(stream_fields="answer")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        streamll.instrument(stream_fields=["answer", 3])  # type: ignore[list-item]


def test_unknown_sink_url_fails_at_decoration_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamll.plugins import DISABLE_PLUGINS_ENV, reload_plugins

    monkeypatch.setenv(DISABLE_PLUGINS_ENV, "kafka")
    reload_plugins()
    try:
        with pytest.raises(streamll.UnknownSchemeError, match=r"pip install 'streamll\[kafka\]'") as caught:
            streamll.instrument(stream_fields=["answer"], sinks=["kafka://127.0.0.1:9092?topic=t"])
        assert caught.value.scheme == "kafka" and caught.value.extra == "kafka"
    finally:
        monkeypatch.delenv(DISABLE_PLUGINS_ENV)
        reload_plugins()


def test_a_failing_sink_never_breaks_or_blocks_the_program(lm, memory_sink: MemorySink) -> None:
    class Exploding(streamll.BaseSink):
        def handle_event(self, event: streamll.Event) -> None:
            raise RuntimeError("sink bug")

    exploding = Exploding()
    streamll.configure(sinks=[exploding, memory_sink])
    prediction = ReasoningQA()(question="still fine?")
    assert streamll.flush(10)
    assert memory_sink.text("answer") == prediction.answer
    stats = exploding.stats
    assert stats.failed == stats.received > 0 and stats.delivered == 0
    exploding.stop()


def test_trace_and_set_context_wrap_instrumented_calls(lm, memory_sink: MemorySink) -> None:
    streamll.set_context(request_id="req-42")
    try:
        with streamll.trace("handle_request") as ctx:
            ReasoningQA()(question="inside a trace")
            ctx.emit("retrieved", data={"documents": 3})
    finally:
        streamll.set_context(request_id=None)
    assert streamll.flush(10)
    events = memory_sink.events
    assert len({e.execution_id for e in events}) == 1, "the trace's execution covers the module call"
    assert all(e.tags.get("request_id") == "req-42" for e in events)
    trace_start = events[0]
    module_start = next(e for e in events if e.operation == "module")
    assert module_start.parent_id == trace_start.event_id
    assert events[-1].event_type == "end" and events[-1].operation == "trace"
    assert any(e.event_type == "retrieved" and e.data == {"documents": 3} for e in events)


def test_a_misspelled_stream_field_is_reported_once(lm, memory_sink: MemorySink) -> None:
    @streamll.instrument(stream_fields=["answr"])
    class Typo(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("question -> answer")

        def forward(self, question: str) -> dspy.Prediction:
            return self.predict(question=question)

    module = Typo()
    with pytest.warns(UserWarning, match=r"\['answr'\] match no output field .*\['answer'\]"):
        module(question="typo?")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module(question="again")  # said once per class
    assert streamll.flush(10)
    assert memory_sink.tokens() == []


def test_a_predictor_whose_adapter_answers_on_its_own_runs_as_without_streamll(
    lm, memory_sink: MemorySink, caplog: pytest.LogCaptureFixture
) -> None:
    """A user's adapter with its own ``__call__`` (a canned answer, no LM request): nothing streams, nothing fails."""

    class Canned(dspy.ChatAdapter):
        def __call__(self, lm, lm_kwargs, signature, demos, inputs):  # type: ignore[no-untyped-def]
            return [{"answer": "Canned."}]

    @streamll.instrument(stream_fields=["answer"])
    class Answering(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.respond = dspy.Predict("question -> answer")

        def forward(self, question: str) -> dspy.Prediction:
            return self.respond(question=question)

    with dspy.context(adapter=Canned()), caplog.at_level(logging.ERROR, logger="streamll"):
        prediction = Answering()(question="Anyone there?")
    assert streamll.flush(10)
    assert prediction.answer == "Canned."
    assert memory_sink.tokens() == [] and caplog.records == []
    assert [event.module_name for event in memory_sink.of_type("end")] == ["Answering"]
