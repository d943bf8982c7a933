"""One LM reply's token streams (``LMCallStream``), fed chunk by chunk as a provider sends them."""

from __future__ import annotations

from typing import Any

import pytest
from streamll.streaming.fields import LMCallStream, PredictorState


class Recorder:
    """A run that keeps each token as (field, token, index, finish_reason, source)."""

    def __init__(self) -> None:
        self.tokens: list[tuple[str, str, int, str | None, str]] = []
        self.extras: list[dict[str, Any]] = []

    def emit_token(self, call: Any, field_name: str, token: str, index: int, finish: Any, source: str, extra=None):  # type: ignore[no-untyped-def]
        self.tokens.append((field_name, token, index, finish, source))
        self.extras.append(dict(extra or {}))

    def native_reasoning_seen(self, state: PredictorState) -> None:
        pass

    def text(self, field_name: str) -> str:
        return "".join(token for name, token, *_ in self.tokens if name == field_name)


def reply(fields: list[str], chosen: set[str], native_reasoning: bool = False) -> tuple[LMCallStream, Recorder]:
    state = PredictorState("qa", "chat", fields, frozenset(chosen), native_reasoning=native_reasoning)
    run = Recorder()
    return LMCallStream(run, state, None, {}), run


def test_reasoning_the_lm_sends_after_the_text_began_is_not_streamed() -> None:
    """A provider may send a stray ``reasoning_content`` delta later; the reasoning field already ended."""
    stream, run = reply(["answer"], {"reasoning", "answer"}, native_reasoning=True)
    stream.feed_reasoning("Think")
    stream.feed_reasoning("ing.")
    stream.feed_text("[[ ## answer ## ]]\nFour")
    stream.feed_reasoning(" Late thought.")
    stream.feed_text(".\n\n[[ ## completed ## ]]")
    stream.end("stop")
    stream.feed_reasoning(" After the end.")

    assert run.text("reasoning") == "Thinking."
    assert [t for t in run.tokens if t[0] == "reasoning"][-1][3] == "field_end"
    assert run.text("answer").strip() == "Four."
    assert run.tokens[-1][0] == "answer" and run.tokens[-1][3] == "stop"


def test_tool_call_arguments_stream_from_chunks_given_as_plain_dicts() -> None:
    """OpenAI-style chunks as parsed JSON (dicts): each call's id, name and argument text are read from them."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"choices": [{"delta": delta, "finish_reason": finish}]}

    state = PredictorState("qa", "chat", ["calls"], frozenset({"calls"}), tool_field="calls")
    run = Recorder()
    stream = LMCallStream(run, state, None, {})
    first = {"index": 0, "id": "call_1", "function": {"name": "search", "arguments": '{"q": '}}
    stream.feed_chunk(chunk({"tool_calls": [first]}))
    stream.feed_chunk(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"ml"}'}}]}))
    stream.feed_chunk(chunk({}, finish="tool_calls"))

    assert run.tokens == [("calls", '{"q": ', 0, None, "stream"), ("calls", '"ml"}', 1, "tool_calls", "stream")]
    assert run.extras == [{"tool_index": 0, "tool_call_id": "call_1", "tool_name": "search"}] * 2
    assert stream.finish_reason == "tool_calls" and stream.tool_chunks == 2


def test_a_field_in_one_piece_of_a_reply_that_streamed_is_source_stream() -> None:
    """``single_chunk`` is for a reply that came whole in one chunk, not for a short field of a streamed reply."""
    streamed, run = reply(["answer"], {"answer"})
    streamed.feed_text("[[ ## answer ## ]]\n")
    streamed.feed_text("Four.\n\n[[ ## completed ## ]]")
    streamed.end("stop")
    whole, whole_run = reply(["answer"], {"answer"})
    whole.feed_text("[[ ## answer ## ]]\nFour.\n\n[[ ## completed ## ]]")
    whole.end("stop")

    assert [(token, source) for _, token, _, _, source in run.tokens] == [("Four.", "stream")]
    assert [(token, source) for _, token, _, _, source in whole_run.tokens] == [("Four.", "single_chunk")]


def lm_call(sink: Any) -> Any:
    """An LM span of a predictor streaming ``answer``, in a run whose events go to ``sink``."""
    from streamll.core.context import Execution
    from streamll.streaming.bridge import LMSpan, PredictCall, TokenRun

    call = PredictCall(None, None)  # type: ignore[arg-type]
    call.state = PredictorState("qa", "chat", ["answer"], frozenset({"answer"}))
    return LMSpan(TokenRun(Execution(sinks=(sink,))), call, "offline")


WHOLE_REPLY = {
    "choices": [{"delta": {"content": "[[ ## answer ## ]]\nHi.\n\n[[ ## completed ## ]]"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3},
}


def test_an_lm_call_that_fails_after_its_whole_reply_reports_the_streams_usage_and_cancel() -> None:
    """A reply read whole can still fail (its assembly) or be cancelled: the LM span says so, with the usage read."""
    from streamll import MemorySink
    from streamll.core.runs import ExecutionCancelled

    sink = MemorySink()
    failed, cancelled = lm_call(sink), lm_call(sink)
    for span in (failed, cancelled):
        stream = span.begin_attempt()
        assert stream is not None
        stream.feed_chunk(WHOLE_REPLY)
    failed.fail_attempt(ValueError("the reply could not be assembled"))
    cancelled.fail_attempt(ExecutionCancelled("the execution was cancelled"))
    assert sink.flush(5)

    (error,) = sink.of_type("error")
    assert error.data["usage"] == {"prompt_tokens": 5, "completion_tokens": 3}
    (end,) = sink.of_type("end")
    assert end.data["finish_reason"] == "cancelled" and end.data["usage"] == error.data["usage"]
    sink.stop()


def test_a_reply_whose_stream_never_ended_ends_its_last_field_when_the_lm_call_returns() -> None:
    """A capture that saw no end of the reply (no finish chunk, no end event): the LM call's return ends it."""
    from streamll import MemorySink

    sink = MemorySink()
    span = lm_call(sink)
    stream = span.begin_attempt()
    assert stream is not None
    stream.feed_text("[[ ## answer ## ]]\nHi there.")
    span.finish(None, [{"text": "[[ ## answer ## ]]\nHi there."}], None)
    assert sink.flush(5)

    answer = sink.tokens("answer")
    assert "".join(token.token for token in answer) == "Hi there."
    assert answer[-1].finish_reason == "stop"
    (end,) = sink.of_type("end")
    assert "finish_reason" not in end.data and end.data["streamed"] is True
    sink.stop()


@pytest.mark.parametrize(
    ("outputs", "replayed"),
    [
        ({"answer": "Four."}, [("answer", "Four.", "cached", "cache")]),
        ({"reasoning": "Two and two."}, [("reasoning", "Two and two.", "cached", "cache")]),
        (
            {"reasoning": "Two and two.", "answer": "Four."},
            [("reasoning", "Two and two.", "field_end", "cache"), ("answer", "Four.", "cached", "cache")],
        ),
    ],
    ids=["first-missing", "last-missing", "both"],
)
def test_a_cached_prediction_replays_the_chosen_fields_it_holds_the_last_one_ending_cached(
    outputs: dict[str, str], replayed: list[tuple[str, str, str, str]]
) -> None:
    """A cache hit replays every chosen field the prediction holds, skipping those it lacks; the replay's last
    token says ``cached`` (as a live reply's last says ``stop``)."""
    from streamll import MemorySink
    from streamll.core.context import Execution
    from streamll.streaming.bridge import PredictCall, TokenRun

    sink = MemorySink()
    call = PredictCall(None, None)  # type: ignore[arg-type]
    call.state = PredictorState("qa", "chat", ["reasoning", "answer"], frozenset({"reasoning", "answer"}))
    TokenRun(Execution(sinks=(sink,))).predictor_finished(call, outputs)
    assert sink.flush(5)

    assert [(t.field, t.token, t.finish_reason, t.data["source"]) for t in sink.tokens()] == replayed
    sink.stop()


def test_an_lm_span_retried_and_closed_in_a_thread_without_the_runs_context_stays_in_its_run() -> None:
    """Each attempt's span carries its run's execution id, sequence, tags and the calling module's span as parent,
    wherever DSPy retries the request or reports the call's return."""
    import contextvars
    import threading

    from streamll import MemorySink, set_context
    from streamll.core.context import current_span

    sink = MemorySink()

    def open_span() -> Any:
        set_context(user_id="u1")
        current_span.set("a" * 32)  # the calling module's span
        return lm_call(sink)

    span = contextvars.copy_context().run(open_span)
    assert span.begin_attempt() is not None

    def retry_and_close() -> None:
        span.fail_attempt(ConnectionError("reset"))
        stream = span.begin_attempt()
        assert stream is not None
        stream.feed_chunk(WHOLE_REPLY)
        span.finish(None, None, None)

    closer = threading.Thread(target=retry_and_close)
    closer.start()
    closer.join()
    assert sink.flush(5)

    assert [(event.event_type, event.operation) for event in sink.events if event.event_type != "token"] == [
        ("start", "lm"),
        ("error", "lm"),
        ("start", "lm"),
        ("end", "lm"),
    ]
    assert {event.execution_id for event in sink.events} == {span.run.execution.execution_id}
    assert [event.sequence for event in sink.events] == sorted(event.sequence for event in sink.events)
    spans = [event for event in sink.events if event.operation == "lm"]
    assert {event.parent_id for event in spans} == {"a" * 32} and spans[-1].data["finish_reason"] == "stop"
    assert all(event.tags == {"user_id": "u1"} for event in spans)
    sink.stop()


def test_a_usage_only_chunk_object_with_no_choices_gives_the_replys_usage() -> None:
    """The last chunk of an OpenAI-style stream may carry only ``usage`` (an object with no ``choices``)."""
    from types import SimpleNamespace

    stream, run = reply(["answer"], {"answer"})
    stream.feed_text("[[ ## answer ## ]]\nFour.\n\n[[ ## completed ## ]]")
    stream.feed_chunk(SimpleNamespace(usage=SimpleNamespace(prompt_tokens=5, completion_tokens=3)))
    stream.end("stop")

    assert stream.usage == {"prompt_tokens": 5, "completion_tokens": 3}
    assert run.text("answer").strip() == "Four."


def test_a_tool_call_chunk_without_an_index_is_the_first_call() -> None:
    """A provider that sends a single tool call may leave out ``index``: its tokens are call 0's."""
    state = PredictorState("qa", "chat", ["calls"], frozenset({"calls"}), tool_field="calls")
    run = Recorder()
    stream = LMCallStream(run, state, None, {})
    first = {"id": "call_1", "function": {"name": "search", "arguments": '{"q": '}}
    for call in (first, {"function": {"arguments": '"ml"}'}}):
        stream.feed_chunk({"choices": [{"delta": {"tool_calls": [call]}, "finish_reason": None}]})
    stream.feed_chunk({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]})

    assert run.tokens == [("calls", '{"q": ', 0, None, "stream"), ("calls", '"ml"}', 1, "tool_calls", "stream")]
    assert run.extras == [{"tool_index": 0, "tool_call_id": "call_1", "tool_name": "search"}] * 2


def test_a_field_streams_own_keys_and_its_last_tokens_keys_both_reach_the_last_token() -> None:
    """``FieldStream(extra=...)`` keys go into every token's data; ``finish(extra=...)`` adds to them, not instead."""
    from streamll.streaming.fields import FieldStream

    stream, run = reply(["answer"], {"answer"})
    field = FieldStream(stream, "answer", extra={"tool_index": 2})
    field.push("Four")
    field.push(".")
    field.finish("stop", extra={"value": "Four."})

    assert [token[1:4] for token in run.tokens] == [("Four", 0, None), (".", 1, "stop")]
    assert run.extras == [{"tool_index": 2}, {"tool_index": 2, "value": "Four."}]


def test_a_cached_prediction_replays_the_fields_after_its_tool_calls() -> None:
    """A cache hit of a predictor choosing its ``dspy.ToolCalls`` field and a text field after it replays both."""
    import dspy
    from streamll import MemorySink
    from streamll.core.context import Execution
    from streamll.streaming.bridge import PredictCall, TokenRun

    sink = MemorySink()
    call = PredictCall(None, None)  # type: ignore[arg-type]
    fields = ["tool_calls", "answer"]
    call.state = PredictorState("qa", "chat", fields, frozenset(fields), tool_field="tool_calls")
    calls = dspy.ToolCalls.from_dict_list([{"name": "search", "args": {"q": "ml"}}])
    TokenRun(Execution(sinks=(sink,))).predictor_finished(call, {"tool_calls": calls, "answer": "Found it."})
    assert sink.flush(5)

    assert [(t.field, t.token, t.finish_reason, t.data["source"]) for t in sink.tokens()] == [
        ("tool_calls", '{"q": "ml"}', "cached", "cache"),
        ("answer", "Found it.", "cached", "cache"),
    ]
    sink.stop()


def test_an_lm_span_reports_its_own_calls_usage_when_other_calls_of_the_lm_ended_after_it() -> None:
    """Calls of one LM at once (``dspy.Parallel``): the LM's newest history entry may be another call's."""
    from types import SimpleNamespace

    from streamll import MemorySink

    sink = MemorySink()
    span = lm_call(sink)
    own, other = [{"text": "mine"}], [{"text": "theirs"}]
    history = [
        {"outputs": own, "usage": {"prompt_tokens": 5, "completion_tokens": 3}},
        {"outputs": other, "usage": {"prompt_tokens": 50, "completion_tokens": 30}},
    ]
    span.finish(SimpleNamespace(history=history), own, None)
    assert sink.flush(5)

    (end,) = sink.of_type("end")
    assert end.data["usage"] == {"prompt_tokens": 5, "completion_tokens": 3}
    sink.stop()


@pytest.mark.parametrize(("calls", "answer_end"), [(0, "stop"), (1, "field_end")], ids=["text-only", "text-then-call"])
def test_a_native_reply_ends_its_text_with_the_lms_reason_unless_tool_calls_follow(calls: int, answer_end: str) -> None:
    """Native function calling: the ToolCalls output is never in the text, so the text's last field may end the reply;
    when the LM also sends tool calls, each call's last token has the reply's reason and the text says field_end."""
    state = PredictorState(
        "qa",
        "chat",
        ["answer", "calls"],
        frozenset({"answer", "calls"}),
        tool_field="calls",
        native_tool_output="calls",
    )
    run = Recorder()
    stream = LMCallStream(run, state, None, {})  # type: ignore[arg-type]
    stream.feed_text("[[ ## answer ## ]]\nLet me check.\n\n[[ ## completed ## ]]")
    for index in range(calls):
        stream.tool_calls.feed(index, "call_1", "weather", '{"city": "Paris"}')  # type: ignore[union-attr]
    stream.end("tool_calls" if calls else "stop")

    assert run.text("answer").strip() == "Let me check."
    assert [t[3] for t in run.tokens if t[0] == "answer"][-1] == answer_end
    assert [t[3] for t in run.tokens if t[0] == "calls"] == ["tool_calls"] * calls
