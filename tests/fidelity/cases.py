"""The corpus: one :class:`Case` per program. Adding a program is adding one entry."""

from __future__ import annotations

from typing import Any

import dspy

from . import programs as p
from .harness import Case, Outcome

# ------------------------------------------------------------------ sanity checks on the plain run


def requests(count: int) -> Any:
    def check(outcome: Outcome) -> None:
        assert len(outcome.requests) == count, f"the plain program made {len(outcome.requests)} LM requests"

    return check


def succeeds_after(count: int) -> Any:
    def check(outcome: Outcome) -> None:
        requests(count)(outcome)
        assert outcome.exception is None, outcome.exception

    return check


def raises(type_name: str, count: int | None = None) -> Any:
    def check(outcome: Outcome) -> None:
        assert outcome.exception is not None and outcome.exception["type"].endswith(type_name), outcome.exception
        if count is not None:
            requests(count)(outcome)

    return check


def all_answered(count: int) -> Any:
    def check(outcome: Outcome) -> None:
        requests(count)(outcome)
        assert outcome.exception is None, outcome.exception
        assert all(item is not None for item in outcome.raw_result), outcome.result

    return check


def streams(outcome: Outcome) -> None:
    assert outcome.stream_responses, "the plain program's dspy.streamify yielded no StreamResponse"
    assert outcome.raw_result is not None


def react_statuses(outcome: Outcome) -> None:
    streams(outcome)
    messages = [item.message for item in outcome.stream_responses if isinstance(item, dspy.streaming.StatusMessage)]
    assert "Calling tool add..." in messages, messages


def chat_fallback(outcome: Outcome) -> None:
    succeeds_after(2)(outcome)
    assert outcome.raw_result.count == 42


# ------------------------------------------------------------------ the corpus

JSON = dspy.JSONAdapter
XML = dspy.XMLAdapter

CASES: list[Case] = [
    Case("predict", p.wrapping(p.predict), check=succeeds_after(1)),
    Case("chain_of_thought", p.wrapping(p.cot), stream_fields=("reasoning", "answer"), check=succeeds_after(1)),
    Case("nested_instrumented", p.nested, stream_fields=("reasoning", "answer"), check=succeeds_after(2)),
    Case("predict_json", p.wrapping(p.predict), adapter=JSON, check=succeeds_after(1)),
    Case("cot_json", p.wrapping(p.cot), adapter=JSON, stream_fields=("reasoning", "answer")),
    Case("predict_xml", p.wrapping(p.predict), adapter=XML, check=succeeds_after(1)),
    Case("cot_xml", p.wrapping(p.cot), adapter=XML, stream_fields=("reasoning", "answer")),
    Case(
        "react_tools",
        p.wrapping(p.react),
        stream_fields=("next_thought", "answer"),
        knobs={"responder": p.react_responder},
        check=succeeds_after(4),
    ),
    Case(
        "react_tools_async",
        p.async_react,
        run=p.run_acall,
        stream_fields=("next_thought", "next_tool_args", "answer"),
        knobs={"responder": p.react_responder},
        check=succeeds_after(4),
    ),
    Case(
        "native_tool_calls",
        p.native_tools(lookup_in_caller=False),
        stream_fields=("tool_calls",),
        knobs={"responder": p.native_tools_responder},
        lm={"model": "gpt-4o-mini"},
        adapter=lambda: dspy.ChatAdapter(use_native_function_calling=True),
        check=succeeds_after(1),
    ),
    Case(
        "native_tool_calls_litellm",
        p.native_tools(lookup_in_caller=True),
        stream_fields=("tool_calls",),
        knobs={"responder": p.native_tools_responder},
        lm={"model": "gpt-4o-mini", "engine": "litellm"},
        adapter=lambda: dspy.ChatAdapter(use_native_function_calling=True),
        check=succeeds_after(1),
    ),
    Case("direct_tool_error", p.direct_tool_error, check=raises("KeyError", 1)),
    Case(
        "react_streamify_status",
        p.wrapping(p.react),
        run=p.streamify_runner(async_streaming=True, statuses=True),
        stream_fields=("next_thought", "answer"),
        knobs={"responder": p.react_responder},
        check=react_statuses,
    ),
    Case(
        "program_of_thought",
        p.wrapping(p.program_of_thought),
        knobs={"responder": p.pot_responder},
        requires=p.has_local_interpreter,
        check=succeeds_after(2),
    ),
    Case("refine", p.wrapping(p.refine), stream_fields=("reasoning", "answer")),
    Case("best_of_n", p.wrapping(p.best_of_n), check=succeeds_after(3)),
    Case(
        "refine_attempts",
        p.wrapping(p.refine_attempts),
        stream_fields=("reasoning", "answer"),
        check=p.attempts_check(3),
    ),
    Case("best_of_n_attempts", p.wrapping(p.best_of_n_attempts), check=succeeds_after(3)),
    Case(
        "two_stage_qualified",
        p.two_stage,
        stream_fields=("respond.answer", "draft.reasoning"),
        knobs={"responder": p.two_answers},
        check=succeeds_after(2),
    ),
    Case(
        "two_stage_bare",
        p.two_stage,
        stream_fields=("answer",),
        knobs={"responder": p.two_answers},
        check=succeeds_after(2),
    ),
    Case(
        "reasoning_model",
        p.wrapping(p.predict),
        stream_fields=("reasoning", "answer"),
        knobs={"reasoning_content": p.REASONING_CONTENT},
        check=succeeds_after(1),
    ),
    Case(
        "reasoning_model_litellm",
        p.wrapping(p.cot),
        stream_fields=("reasoning", "answer"),
        knobs={"reasoning_content": p.REASONING_CONTENT},
        lm={"engine": "litellm"},
        requires=p.has_engines,
        check=succeeds_after(1),
    ),
    Case("priced_model", p.wrapping(p.cot), stream_fields=("reasoning", "answer"), lm={"model": "gpt-4o-mini"}),
    Case(
        "priced_model_litellm",
        p.wrapping(p.cot),
        stream_fields=("reasoning", "answer"),
        lm={"model": "gpt-4o-mini", "engine": "litellm"},
        requires=p.has_engines,
    ),
    Case(
        "reasoning_native_feature",
        p.wrapping(p.reasoning_typed),
        stream_fields=("reasoning", "answer"),
        knobs={"reasoning_content": p.REASONING_CONTENT},
        lm={"model": "o3-mini", "temperature": 1.0, "max_tokens": 16000},
        requires=p.has_reasoning_type,
        check=succeeds_after(1),
    ),
    Case(
        "reasoning_typed_field",
        p.wrapping(p.reasoning_typed),
        stream_fields=("reasoning", "answer"),
        knobs={"reasoning_content": p.REASONING_CONTENT},
        requires=p.has_reasoning_type,
        check=succeeds_after(1),
    ),
    Case(
        "parallel",
        p.parallel,
        run=p.run_parallel,
        knobs={"responder": p.echo_answer},
        ordered=False,
        check=all_answered(3),
    ),
    Case(
        "batch",
        p.wrapping(p.predict),
        run=p.run_batch,
        knobs={"responder": p.echo_answer},
        ordered=False,
        check=all_answered(3),
    ),
    Case("evaluate", p.wrapping(p.predict), run=p.run_evaluate, knobs={"responder": p.echo_answer}, ordered=False),
    Case(
        "chat_to_json_fallback",
        p.wrapping(p.counted),
        knobs={"responder": p.fallback_responder},
        check=chat_fallback,
    ),
    Case(
        "fallback_also_fails",
        p.wrapping(p.predict),
        knobs={"raw_reply": "no fields here"},
        check=raises("AdapterParseError", 2),
    ),
    Case(
        "retry_after_midstream_cut",
        p.wrapping(p.cot),
        stream_fields=("reasoning", "answer"),
        knobs={"disconnect_after": 3, "disconnect_times": 1},
        lm={"num_retries": 1},
        check=succeeds_after(2),
    ),
    Case(
        "midstream_cut_fails",
        p.wrapping(p.cot),
        stream_fields=("reasoning", "answer"),
        knobs={"disconnect_after": 3},
        cut_body=True,
        known=(p.NATIVE_CUT_MESSAGE,),
        check=raises("Error"),
    ),
    Case(
        "midstream_cut_fails_litellm",
        p.wrapping(p.cot),
        stream_fields=("reasoning", "answer"),
        knobs={"disconnect_after": 3},
        lm={"engine": "litellm"},
        requires=p.has_engines,
        cut_body=True,
        check=raises("Error"),
    ),
    Case("lm_http_error", p.wrapping(p.predict), knobs={"fail_status": 500}, check=raises("Error")),
    Case(
        "cache_hits",
        p.wrapping(p.cot),
        run=lambda program: [program(question=q) for q in (p.QUESTIONS[0], p.QUESTIONS[1], p.QUESTIONS[0])],
        stream_fields=("reasoning", "answer"),
        lm={"cache": True},
        disk_cache=True,
        check=succeeds_after(2),
    ),
    Case("track_usage", p.wrapping(p.cot), run=p.run_tracking_usage, stream_fields=("reasoning", "answer")),
    Case("typed_outputs", p.wrapping(p.typed), stream_fields=("answer", "count"), check=succeeds_after(1)),
    Case("typed_outputs_json", p.wrapping(p.typed), adapter=JSON, stream_fields=("answer", "kind")),
    Case(
        "typed_outputs_all",
        p.wrapping(p.typed),
        stream_fields=("answer", "count", "ok", "tags", "kind", "info"),
        check=succeeds_after(1),
    ),
    Case("typed_outputs_xml", p.wrapping(p.typed), adapter=XML, stream_fields=("count", "ok", "tags", "info")),
    Case("compiled_state_file", p.compiled(whole_program=False), check=succeeds_after(2)),
    Case("compiled_save_program", p.compiled(whole_program=True), check=succeeds_after(2)),
    Case("acall_aforward", p.async_cot, run=p.run_acall, stream_fields=("reasoning", "answer")),
    Case(
        "acall_gather",
        p.async_predict,
        run=p.run_acall_gather,
        knobs={"responder": p.echo_answer},
        ordered=False,
        check=all_answered(3),
    ),
    Case(
        "acall_forward_only",
        p.wrapping(p.cot),
        run=p.run_acall,
        stream_fields=("reasoning", "answer"),
        check=raises("AttributeError", 0),
    ),
    Case("streamify_async", p.wrapping(p.predict), run=p.streamify_runner(async_streaming=True), check=streams),
    Case("streamify_sync", p.wrapping(p.predict), run=p.streamify_runner(async_streaming=False), check=streams),
    Case("user_error_context", p.raising("context"), check=raises("ValueError", 1)),
    Case("user_error_cause", p.raising("cause"), check=raises("RuntimeError", 1)),
]
