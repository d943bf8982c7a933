"""The LM span of a streamed request reports what the plain request reports; how fields are chosen per call."""

from __future__ import annotations

import dataclasses
import time
import warnings
from typing import Any

import dspy
import pydantic
import pytest
import streamll
from streamll import MemorySink
from streamll.streaming.fields import usage_dict
from streamll.testing import OfflineLMServer

from tests.agent_programs import native_adapter, native_agent, native_lm

from .test_invisible import QA, BareQA, StreamedQA, lm_spans


def lm_end(sink: MemorySink) -> dict:
    assert streamll.flush(10)
    (end,) = [event for event in sink.of_type("end") if event.operation == "lm"]
    return end.data


def test_a_streamed_request_reports_the_usage_of_the_plain_one(
    server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    def program(fields: list[str]) -> dspy.Module:
        return streamll.instrument(stream_fields=fields)(type("QA", (QA,), {}))()

    with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
        program([])(question="Same question?")
        plain = lm_end(memory_sink)
        memory_sink.clear()
        program(["answer"])(question="Same question?")
        streamed = lm_end(memory_sink)
    assert server.requests[0].get("stream") is not True and server.requests[1]["stream"] is True
    assert plain["usage"]["completion_tokens"] > 0
    assert streamed["usage"] == plain["usage"]
    assert streamed["streamed"] is True and streamed["finish_reason"] == "stop"
    assert "streamed" not in plain


def test_a_single_field_name_chosen_in_forward_streams_that_field(
    server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    @streamll.instrument
    class Chooser(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cot = dspy.ChainOfThought("question -> answer")

        def forward(self, question: str) -> dspy.Prediction:
            self._streamll_stream_fields = "answer"
            return self.cot(question=question)

    with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
        prediction = Chooser()(question="One field by name?")
    assert streamll.flush(10)
    assert {token.field for token in memory_sink.tokens()} == {"answer"}
    assert memory_sink.text("answer") == prediction.answer


def test_usage_counts_are_the_integers_of_any_usage_shape() -> None:
    @dataclasses.dataclass
    class Counted:
        prompt_tokens: int
        cached: bool
        model: str

    class Model(pydantic.BaseModel):
        prompt_tokens: int
        completion_tokens: int | None

    @dataclasses.dataclass(frozen=True, slots=True)
    class Slotted:  # as DSPy's native engines report usage (lm15's Usage)
        input_tokens: int
        output_tokens: int | None

    class Plain:
        def __init__(self) -> None:
            self.total_tokens = 7

    assert usage_dict({"prompt_tokens": 3, "flag": True, "name": "x"}) == {"prompt_tokens": 3}
    assert usage_dict(Counted(4, True, "m")) == {"prompt_tokens": 4}
    assert usage_dict(Slotted(6, None)) == {"input_tokens": 6}
    assert usage_dict(Model(prompt_tokens=5, completion_tokens=None)) == {"prompt_tokens": 5}
    assert usage_dict(Plain()) == {"total_tokens": 7}
    assert usage_dict(None) is None and usage_dict({"name": "no counts"}) is None


def test_a_streamed_litellm_request_keeps_the_users_stream_options(
    server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    import importlib.util

    litellm_engine = {"engine": "litellm"} if importlib.util.find_spec("dspy.clients.engines") else {}  # dspy >= 3.4

    lm = server.lm(**litellm_engine, stream_options={"include_obfuscation": False})
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        prediction = StreamedQA()(question="Options kept?")
    assert streamll.flush(10)
    (request,) = server.requests
    assert request["stream"] is True
    assert request["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert memory_sink.text("answer") == prediction.answer


def test_a_native_stream_without_a_finish_reason_still_ends_its_last_field(
    server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    """The last token of a field always has a finish_reason: ``stop`` when the LM's stream never named one."""
    import importlib.util

    from tests.helpers import allowed_skip

    if importlib.util.find_spec("dspy.clients.engines") is None:
        allowed_skip(f"dspy {dspy.__version__} has no native engines (LiteLLM rejects such a stream)")

    server.configure(finish_reason=None)
    with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
        prediction = StreamedQA()(question="No finish reason?")
    assert streamll.flush(10)
    answer = memory_sink.tokens("answer")
    assert "".join(token.token for token in answer) == prediction.answer
    assert [token.finish_reason for token in answer] == [None] * (len(answer) - 1) + ["stop"]


def test_a_failing_lm_call_of_a_predictor_that_streams_nothing_reports_the_error(
    lm, server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    """No field of the predictor streams, so its request is sent as DSPy sends it; the LM span still closes."""
    server.configure(fail_status=500, fail_message="server down")
    with pytest.raises(Exception, match="server down"):
        BareQA()(question="Nothing streamed?")
    spans = lm_spans(memory_sink)
    assert spans and all(close.event_type == "error" for _, close in spans)
    assert all("server down" in close.data["error_message"] for _, close in spans)
    assert memory_sink.tokens() == []


class StoppingLM(dspy.BaseLM):
    """An LM client that honours a cancelled run itself: it raises ``ExecutionCancelled`` instead of replying."""

    def __init__(self) -> None:
        super().__init__(model="stopping", cache=False)

    def forward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
        raise streamll.ExecutionCancelled("the execution was cancelled")


@pytest.mark.filterwarnings("ignore:Implementing custom LMs:DeprecationWarning")  # the interface every DSPy 3 has
@pytest.mark.parametrize("program", [BareQA, StreamedQA], ids=["nothing-chosen", "answer-chosen"])
def test_an_lm_call_stopped_by_its_own_client_ends_cancelled(program: type, memory_sink: MemorySink) -> None:
    """A cancellation raised by an LM client streamll does not read ends the LM span ``cancelled``, not in error."""
    with dspy.context(lm=StoppingLM(), adapter=dspy.ChatAdapter()), pytest.raises(streamll.ExecutionCancelled):
        program()(question="Stopped?")
    ((start, close),) = lm_spans(memory_sink)
    assert start.module_name == "stopping"
    assert (close.event_type, close.data["finish_reason"]) == ("end", "cancelled")


def test_an_lm_the_module_calls_itself_answers_as_without_streamll(
    lm, server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    """An LM called directly in ``forward`` (no predictor): the plain request and reply, an LM span, no tokens."""

    @streamll.instrument(stream_fields=["answer"])
    class Direct(dspy.Module):
        def forward(self, question: str) -> list[Any]:
            return dspy.settings.lm(question)

    with dspy.context(adapter=dspy.ChatAdapter()):
        plain = lm("Hello?")
        assert Direct()(question="Hello?") == plain
    ((start, close),) = lm_spans(memory_sink)
    assert (start.module_name, close.event_type) == (lm.model, "end") and close.data["usage"]
    assert [request.get("stream") for request in server.requests] == [None, None] and memory_sink.tokens() == []


def test_an_lm_span_names_its_model_and_times_the_request_in_milliseconds(
    server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    delay = 0.005
    server.configure(answers={"answer": "one two three four five six"}, token_delay=delay)
    with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
        began = time.perf_counter()
        StreamedQA()(question="How long?")
        wall_ms = (time.perf_counter() - began) * 1000
    ((start, end),) = lm_spans(memory_sink)
    assert start.module_name == end.module_name == end.data["model"] == server.lm().model
    answer_tokens = len(memory_sink.tokens("answer"))  # each from its own chunk, each chunk after the delay
    assert answer_tokens >= 6
    assert answer_tokens * delay * 1000 <= end.data["duration_ms"] <= wall_ms


def test_a_streamed_request_whose_reply_has_no_text_says_it_streamed_nothing(
    server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    server.configure(raw_reply="")

    def error_of(program: dspy.Module) -> type[BaseException] | None:
        try:
            program(question="Anything?")
        except Exception as error:  # DSPy 3.4 rejects an empty reply; 3.0 answers it through its fallbacks
            return type(error)
        return None

    with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
        plain = error_of(QA())
        before = len(server.requests)
        assert error_of(StreamedQA()) is plain
    spans = lm_spans(memory_sink)
    assert spans and all(request["stream"] is True for request in server.requests[before:])
    assert [close.data["streamed"] for _, close in spans] == [False] * len(spans)


def test_a_reply_of_one_tool_call_in_one_chunk_is_streamed(server: OfflineLMServer, memory_sink: MemorySink) -> None:
    """Some providers send a whole tool call (name and arguments) in one chunk, with no text."""
    server.configure(responder=lambda request: {"tool_calls": [{"name": "weather", "arguments": '{"city":"Paris"}'}]})
    with dspy.context(lm=native_lm(server), adapter=native_adapter()):
        native_agent()(question="Weather in Paris?")
    ((_, end),) = lm_spans(memory_sink)
    assert end.data["streamed"] is True and end.data["finish_reason"] == "tool_calls"
    assert [token.token for token in memory_sink.tokens("tool_calls")] == ['{"city":"Paris"}']


def test_a_run_that_calls_no_predictor_does_not_warn_about_its_stream_fields(memory_sink: MemorySink) -> None:
    """No predictor ran, so no output field could have matched: there is nothing to warn about."""

    @streamll.instrument(stream_fields=["answer"])
    class Shortcut(dspy.Module):
        def forward(self, question: str) -> dspy.Prediction:
            return dspy.Prediction(answer="known already")

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*match no output field")
        assert Shortcut()(question="Cached upstream?").answer == "known already"
