"""An instrumented program does exactly what the plain one does.

Each program of the corpus (``cases.CASES``) runs plain, then with a bare
``@streamll.instrument`` and with ``@streamll.instrument(stream_fields=...)``,
against the offline LM server. The instrumented runs must return the same
result, send the same LM requests (same number, same bodies; a streamed-field
run may only add the request's ``stream`` / ``stream_options`` keys) and raise
the same exception (type, message, ``__context__`` / ``__cause__`` chain and
the user's traceback frames). With stream fields, each chosen text field of
every returned prediction must also be what streamll streamed for it.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import dspy
import pytest
import streamll
from streamll import MemorySink
from streamll.streaming.typed import jsonable, type_name
from streamll.testing import OfflineLMServer

from tests.helpers import allowed_skip

from .cases import CASES
from .harness import (
    STREAM_KEYS,
    Case,
    Decorate,
    Outcome,
    assert_same,
    comparable_history,
    comparable_requests,
    predictions_in,
    run_variant,
    streamed_texts,
    without_cut_detail,
)

WRAPPER_FRAMES = 2
"""Frames the decorator's wrapper may add to a traceback (its ``__call__`` and the call inside it)."""


def user_frames(outcome: Outcome) -> list[str]:
    return [name for name in outcome.frames if not name.startswith("streamll:")]


def plain(cls: type) -> type:
    return cls


def variants(case: Case) -> dict[str, Decorate]:
    return {"bare": streamll.instrument, "fields": streamll.instrument(stream_fields=list(case.stream_fields))}


@streamll.instrument
class _Instrumented(dspy.Module):
    """Some class is instrumented and called before any plain run, as in a real process that uses one.

    So the plain baseline is the same whatever ran before in the session, and a
    change that instrumenting one class makes to every DSPy program shows up.
    """

    def forward(self) -> None:
        return None


_plain_outcomes: dict[str, Outcome] = {}


def plain_outcome(case: Case, server: OfflineLMServer, sink: MemorySink) -> Outcome:
    """The plain program's outcome (run once per case and session)."""
    if not _plain_outcomes:
        _Instrumented()()
    if case.id not in _plain_outcomes:
        _plain_outcomes[case.id] = run_variant(case, plain, server, sink)
    return _plain_outcomes[case.id]


def skip_unsupported(case: Case) -> None:
    reason = case.requires() if case.requires is not None else None
    if reason:
        allowed_skip(reason)  # a DSPy line without the feature (the dspy_matrix sessions)


def params(with_variants: bool) -> list[Any]:
    out = []
    for case in CASES:
        for variant in ("bare", "fields") if with_variants else ("plain",):
            known = [k for k in case.known if variant in k.variants and k.applies()] if with_variants else []
            marks = [pytest.mark.xfail(strict=True, reason=known[0].reason)] if known else []
            out.append(pytest.param(case, variant, id=f"{case.id}-{variant}", marks=marks))
    return out


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("case", "variant"), params(with_variants=False))
def test_plain_program_does_what_the_case_says(
    case: Case, variant: str, server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    """The baseline itself exercises the behaviour the case is about (a fallback, a retry...)."""
    skip_unsupported(case)
    outcome = plain_outcome(case, server, memory_sink)
    assert outcome.tokens == []
    if case.check is not None:
        case.check(outcome)
    else:
        assert outcome.exception is None, outcome.exception


def stream_response_items(outcome: Outcome) -> list[Any]:
    return [dataclasses.asdict(item) for item in outcome.stream_responses]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("case", "variant"), params(with_variants=True))
def test_instrumented_program_does_what_the_plain_one_does(
    case: Case, variant: str, server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    skip_unsupported(case)
    expected = plain_outcome(case, server, memory_sink)
    actual = run_variant(case, variants(case)[variant], server, memory_sink)

    if case.cut_body:
        assert_same("exceptions", without_cut_detail(actual.exception), without_cut_detail(expected.exception))
    else:
        assert_same("exceptions", actual.exception, expected.exception)
    if case.cut_body:  # the streamed call's error is rebuilt after LiteLLM's completion returned the stream
        shared = user_frames(expected)[: len(user_frames(actual))]
        assert_same("traceback frames down to the LM call", user_frames(actual), shared)
    else:
        assert_same("traceback frames outside streamll", user_frames(actual), user_frames(expected))
    foreign = [name for name in expected.frames if name.startswith("streamll:")]
    assert not foreign, f"a program without @instrument has streamll frames in its traceback: {foreign}"
    added = [name for name in actual.frames if name.startswith("streamll:")]
    assert len(added) <= WRAPPER_FRAMES, f"streamll frames in the user's traceback: {added}"
    assert_same("results", actual.result, expected.result)
    drop = () if variant == "bare" else STREAM_KEYS
    assert_same(
        "LM requests",
        comparable_requests(actual, ordered=case.ordered, drop=drop),
        comparable_requests(expected, ordered=case.ordered, drop=drop),
    )
    assert_same(
        "LM history entries",
        comparable_history(actual, ordered=case.ordered),
        comparable_history(expected, ordered=case.ordered),
    )
    assert_same("streamify's StreamResponses", stream_response_items(actual), stream_response_items(expected))

    if variant == "bare":
        assert actual.tokens == [], "a bare @instrument streams no field"
        return
    texts = streamed_texts(actual.tokens)
    predictions = predictions_in(actual.raw_result)
    one_reply = len(expected.requests) == 1 and len(predictions) == 1
    if one_reply:  # the reply parsed, so every typed field's last token has its value
        unvalued = [
            e.field for e in actual.tokens if e.data.get("field_type") and e.finish_reason and "value" not in e.data
        ]
        assert not unvalued, f"typed fields without a value: {unvalued}"
    for prediction in predictions:
        for name in {entry.rpartition(".")[2] for entry in case.stream_fields}:
            value = prediction.get(name) if name in prediction else None
            if isinstance(value, dspy.ToolCalls):  # native tool calls: their arguments stream per call
                assert_tool_arguments(actual.tokens, name, value, exact=one_reply)
                continue
            if value is not None and not isinstance(value, str) and type_name(type(value)) is not None:
                assert_typed_value(actual.tokens, name, value, exact=one_reply)
                continue
            value = str(value) if value is not None and type_name(type(value)) is None else value
            if not isinstance(value, str):
                continue
            if one_reply:  # one LM reply: exactly one stream of the field, and it is the value
                assert texts.get(name) == [value], f"{name!r}: streamed {texts.get(name)} for the value {value!r}"
            else:
                assert value in texts.get(name, []), f"{name!r} of {prediction!r} was not streamed as such: {texts}"


def assert_tool_arguments(tokens: list[Any], name: str, value: Any, *, exact: bool) -> None:
    """Each native tool call's argument tokens join to its arguments' JSON (per ``tool_call_id``)."""
    texts: dict[str, str] = {}
    names: dict[str, str] = {}
    for event in tokens:
        if event.field == name and "tool_call_id" in event.data:
            texts[event.data["tool_call_id"]] = texts.get(event.data["tool_call_id"], "") + event.token
            names[event.data["tool_call_id"]] = event.data.get("tool_name", "")
    streamed = [(names[call_id], json.loads(text)) for call_id, text in texts.items()]
    calls = [(call.name, call.args) for call in value.tool_calls]
    if exact:
        assert streamed == calls, f"{name!r}: streamed tool calls {streamed} for {calls}"
    else:
        assert all(call in streamed for call in calls), f"{name!r}: streamed tool calls {streamed} for {calls}"


def assert_typed_value(tokens: list[Any], name: str, value: Any, *, exact: bool) -> None:
    """The last token of a typed field carries the prediction's value, in JSON form."""
    values = [event.data["value"] for event in tokens if event.field == name and "value" in event.data]
    assert all(event.data.get("field_type") for event in tokens if event.field == name), f"{name!r}: no field_type"
    if exact:
        assert values == [jsonable(value)], f"{name!r}: streamed values {values} for {value!r}"
    else:
        assert jsonable(value) in values, f"{name!r}: streamed values {values} for {value!r}"
