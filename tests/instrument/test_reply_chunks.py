"""The shapes of stream chunks an LM reply may arrive in: plain dicts, SDK-style objects, partial tool-call deltas."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from streamll.streaming.fields import CANCELLED, LMCallStream, PredictorState

from .test_reply_stream import Recorder, reply

REPLY = "[[ ## answer ## ]]\nFour.\n\n[[ ## completed ## ]]"


def tool_reply() -> tuple[LMCallStream, Recorder]:
    """A reply of a predictor that streams its ``dspy.ToolCalls`` field ``calls`` from native tool calls."""
    state = PredictorState("qa", "chat", ["calls"], frozenset({"calls"}), tool_field="calls")
    run = Recorder()
    return LMCallStream(run, state, None, {}), run


def tool_chunk(*calls: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"delta": {"tool_calls": list(calls)}, "finish_reason": finish}]}


def test_a_reply_in_plain_dict_chunks_streams_its_text() -> None:
    """Chunks parsed from the wire as JSON (dicts all the way down) stream the reply's text like litellm's objects."""
    stream, run = reply(["answer"], {"answer"})
    for piece in (REPLY[:20], REPLY[20:]):
        stream.feed_chunk({"choices": [{"delta": {"content": piece}, "finish_reason": None}]})
    stream.feed_chunk({"choices": [{"delta": {}, "finish_reason": "stop"}]})

    assert run.text("answer") == "Four."
    assert run.tokens[-1][3] == "stop" and stream.chunks_with_text == 2


def test_the_lms_own_reasoning_streams_from_plain_dict_chunks() -> None:
    """``reasoning_content`` in a dict delta streams as the ``reasoning`` field (source ``native``) before the text."""
    stream, run = reply(["answer"], {"reasoning", "answer"}, native_reasoning=True)
    for delta in ({"reasoning_content": "Two"}, {"reasoning_content": " and two."}, {"content": REPLY}):
        stream.feed_chunk({"choices": [{"delta": delta, "finish_reason": None}]})
    stream.feed_chunk({"choices": [{"delta": {}, "finish_reason": "stop"}]})

    assert [token[1:] for token in run.tokens if token[0] == "reasoning"] == [
        ("Two", 0, None, "native"),
        (" and two.", 1, "field_end", "native"),
    ]
    assert run.text("answer") == "Four."


def test_reasoning_content_that_is_not_text_makes_no_tokens() -> None:
    """A provider's structured ``reasoning_content`` (not a string) is not streamed; the reply's text still is."""
    stream, run = reply(["answer"], {"reasoning", "answer"}, native_reasoning=True)
    stream.feed_chunk({"choices": [{"delta": {"reasoning_content": [{"type": "thinking"}], "content": REPLY}}]})
    stream.feed_chunk({"choices": [{"delta": {}, "finish_reason": "stop"}]})

    assert [token[0] for token in run.tokens] == ["answer"] and run.text("answer") == "Four."


def test_a_reply_in_sdk_style_object_chunks_streams_its_text() -> None:
    """Chunks as attribute-only objects (the OpenAI SDK's, no ``.get``); a last choice may carry only its finish."""
    stream, run = reply(["answer"], {"answer"})
    for piece in (REPLY[:20], REPLY[20:]):
        stream.feed_chunk(SimpleNamespace(choices=[SimpleNamespace(delta=SimpleNamespace(content=piece))]))
    stream.feed_chunk(SimpleNamespace(choices=[SimpleNamespace(delta=SimpleNamespace(), finish_reason=None)]))
    stream.feed_chunk(SimpleNamespace(choices=[SimpleNamespace(finish_reason="stop")]))

    assert run.text("answer") == "Four."
    assert run.tokens[-1][3] == "stop" and stream.finish_reason == "stop"


def test_tool_call_arguments_stream_from_sdk_style_object_chunks() -> None:
    """Tool-call deltas as attribute-only objects; a later delta of the call without ``id`` keeps the first id."""
    stream, run = tool_reply()

    def chunk(call: SimpleNamespace, finish: str | None = None) -> SimpleNamespace:
        delta = SimpleNamespace(tool_calls=[call])
        return SimpleNamespace(choices=[SimpleNamespace(delta=delta, finish_reason=finish)])

    first = SimpleNamespace(index=0, id="call_1", function=SimpleNamespace(name="search", arguments='{"q": '))
    stream.feed_chunk(chunk(first))
    stream.feed_chunk(chunk(SimpleNamespace(index=0, function=SimpleNamespace(arguments='"ml"}'))))
    stream.feed_chunk(SimpleNamespace(choices=[], usage=SimpleNamespace(prompt_tokens=5, completion_tokens=3)))
    stream.feed_chunk(SimpleNamespace(choices=[SimpleNamespace(delta=SimpleNamespace(), finish_reason="tool_calls")]))

    assert run.tokens == [("calls", '{"q": ', 0, None, "stream"), ("calls", '"ml"}', 1, "tool_calls", "stream")]
    assert run.extras == [{"tool_index": 0, "tool_call_id": "call_1", "tool_name": "search"}] * 2
    assert stream.usage == {"prompt_tokens": 5, "completion_tokens": 3}


def test_a_tool_calls_id_and_name_sent_after_its_first_piece_reach_its_tokens() -> None:
    """A provider may name the call only in a later delta: every token of the call still carries its id and name."""
    stream, run = tool_reply()
    stream.feed_chunk(tool_chunk({"index": 0, "function": {"arguments": '{"q": '}}))
    stream.feed_chunk(tool_chunk({"index": 0, "id": "call_1", "function": {"name": "search", "arguments": '"ml"}'}}))
    stream.feed_chunk(tool_chunk(finish="tool_calls"))

    assert [token[1] for token in run.tokens] == ['{"q": ', '"ml"}']
    assert run.extras == [{"tool_index": 0, "tool_call_id": "call_1", "tool_name": "search"}] * 2


def test_a_tool_call_without_an_id_or_name_has_none_in_its_tokens() -> None:
    """No ``tool_call_id`` / ``tool_name`` key at all when the LM sends none (not a ``None`` value)."""
    stream, run = tool_reply()
    stream.feed_chunk(tool_chunk({"index": 0, "function": {"arguments": "{}"}}))
    stream.feed_chunk(tool_chunk(finish="tool_calls"))

    assert run.tokens == [("calls", "{}", 0, "tool_calls", "single_chunk")]
    assert run.extras == [{"tool_index": 0}]


def test_a_tool_calls_first_id_and_name_hold_when_a_later_delta_repeats_other_ones() -> None:
    """Every token of one call carries one id and one name, those of its first delta, so a consumer can group them."""
    stream, run = tool_reply()
    stream.feed_chunk(tool_chunk({"index": 0, "id": "call_1", "function": {"name": "search", "arguments": '{"q": '}}))
    stream.feed_chunk(tool_chunk({"index": 0, "id": "chunk_2", "function": {"name": "x", "arguments": '"ml"}'}}))
    stream.feed_chunk(tool_chunk(finish="tool_calls"))

    assert run.extras == [{"tool_index": 0, "tool_call_id": "call_1", "tool_name": "search"}] * 2


def test_reasoning_that_arrives_after_a_reply_was_cancelled_is_not_streamed() -> None:
    """A cancelled reply is over: the LM's reasoning sent afterwards (its stream still draining) makes no tokens."""
    stream, run = reply(["answer"], {"reasoning", "answer"}, native_reasoning=True)
    stream.end(CANCELLED)
    for piece in ("Late", " thought", "."):
        stream.feed_reasoning(piece)

    assert run.tokens == []


def test_a_reply_of_only_the_lms_reasoning_ends_it_with_the_replys_finish_reason() -> None:
    """A reply cut (``length``) before any text: its reasoning is the reply's last field and says so."""
    stream, run = reply(["answer"], {"reasoning", "answer"}, native_reasoning=True)
    for piece in ("Two", " and"):
        stream.feed_chunk({"choices": [{"delta": {"reasoning_content": piece}, "finish_reason": None}]})
    stream.feed_chunk({"choices": [{"delta": {}, "finish_reason": "length"}]})

    assert [token[1:4] for token in run.tokens] == [("Two", 0, None), (" and", 1, "length")]


def test_text_that_arrives_after_a_reply_was_cancelled_is_not_streamed() -> None:
    """A cancelled reply is over: the rest of its text (the provider's stream still draining) makes no tokens."""
    stream, run = reply(["answer"], {"answer"})
    stream.feed_text("[[ ## answer ## ]]\nFo")
    stream.feed_text("u")
    stream.end(CANCELLED)
    stream.feed_chunk({"choices": [{"delta": {"content": "r.\n\n[[ ## completed ## ]]"}, "finish_reason": "stop"}]})

    assert [token[1:4] for token in run.tokens] == [("Fo", 0, None), ("u", 1, CANCELLED)]


def test_a_json_reply_cut_after_a_keys_colon_ends_that_field_empty() -> None:
    """``{"answer":`` then the end (max tokens): DSPy reads an empty answer: one empty token, the last."""
    state = PredictorState("qa", "json", ["answer"], frozenset({"answer"}))
    run = Recorder()
    stream = LMCallStream(run, state, None, {})
    stream.feed_text('{"answer": ')
    stream.end("length")

    assert run.tokens == [("answer", "", 0, "length", "single_chunk")]


def test_a_typed_fields_last_token_has_no_value_when_the_reply_was_cut() -> None:
    """A reply cut by an error or a cancel is partial: its typed field's last token carries no parsed ``value``."""
    for reason in (CANCELLED, "error"):
        state = PredictorState(
            "qa",
            "chat",
            ["answer"],
            frozenset({"answer"}),
            field_types={"answer": "int"},
            values=lambda _: {"answer": 4},
        )
        run = Recorder()
        stream = LMCallStream(run, state, None, {})
        stream.feed_text("[[ ## answer ## ]]\n4")
        stream.end(reason)

        assert run.tokens[-1][3] == reason and run.extras[-1] == {}, reason


def test_native_tool_calls_of_a_predictor_without_a_chosen_tool_field_make_no_tokens() -> None:
    """Tool-call deltas stream only as a chosen ``dspy.ToolCalls`` field; with none chosen they are not tokens."""
    stream, run = reply(["answer"], {"answer"})
    stream.feed_chunk(tool_chunk({"index": 0, "id": "call_1", "function": {"name": "search", "arguments": "{}"}}))
    stream.feed_chunk(tool_chunk(finish="tool_calls"))

    assert run.tokens == [] and stream.tool_chunks == 0


def test_a_usage_object_that_cannot_be_read_gives_no_usage_and_the_reply_still_streams() -> None:
    """A usage of no known shape (no fields, dict, dataclass or pydantic model): no counts, no failure."""
    from collections import namedtuple

    stream, run = reply(["answer"], {"answer"})
    usage = namedtuple("Usage", "prompt_tokens completion_tokens")(5, 3)
    stream.feed_chunk({"choices": [{"delta": {"content": REPLY}, "finish_reason": "stop"}], "usage": usage})

    assert stream.usage is None and run.text("answer") == "Four."


def test_an_empty_piece_of_text_is_not_a_chunk_of_the_reply() -> None:
    """A reply whose text came whole in one piece is ``single_chunk`` even when an empty piece came before it."""
    stream, run = reply(["answer"], {"answer"})
    stream.feed_text("")
    stream.feed_text(REPLY)
    stream.end("stop")

    assert run.tokens == [("answer", "Four.", 0, "stop", "single_chunk")]
