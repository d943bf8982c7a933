"""The state of one instrumented run: predictor calls, LM spans, token events.

:mod:`streamll.streaming.hooks` tells a :class:`TokenRun` which predictor runs
with which adapter and signature and opens an :class:`LMSpan` per LM call;
chosen fields that never streamed (a cache hit) are replayed from the prediction.

Tokens themselves are captured below DSPy (see :mod:`streamll.streaming.capture`):
the LM request of a predictor with a chosen field streams, each piece of text
feeds the current :class:`LMSpan`'s :class:`~streamll.streaming.fields.LMCallStream`,
and DSPy receives the assembled reply as an ordinary call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from streamll.core.context import Execution, context_tags, current_span
from streamll.core.emitter import dispatch, dispatch_record, make_event
from streamll.core.events import TokenEvent
from streamll.core.records import TokenLane, TokenRecord
from streamll.core.runs import ExecutionCancelled
from streamll.core.spans import error_data
from streamll.streaming.fields import (
    CACHED,
    CANCELLED,
    ERROR,
    FIELD_END,
    REASONING,
    FieldStream,
    LMCallStream,
    PredictorState,
    usage_dict,
)
from streamll.streaming.frames import Frame, FrameRun
from streamll.streaming.names import attempt_of, choose, predictor_name, predictor_path
from streamll.streaming.native_tools import ChosenCalls, record_chosen, replay_tool_calls, tool_field
from streamll.streaming.parsers import adapter_kind
from streamll.streaming.tools import ReactState
from streamll.streaming.typed import replay_text, type_name, value_extra, value_parser

logger = logging.getLogger("streamll")


class PredictCall:
    """One call of a ``dspy.Predict`` inside an instrumented run (one per thread or task)."""

    __slots__ = ("extra", "frame", "lm", "predict", "react", "state")

    def __init__(self, predict: Any, frame: Frame) -> None:
        """``predict`` called within ``frame``; its state, LM span and ReAct state are filled in as it runs."""
        self.predict = predict
        self.frame = frame
        self.state: PredictorState | None = None
        self.lm: LMSpan | None = None
        self.extra: dict[str, Any] = {}
        """Keys every token event of this call carries in ``data`` (``step`` for a ReAct iteration)."""
        self.react: ReactState | None = None


current_predict: ContextVar[PredictCall | None] = ContextVar("streamll_predict_call", default=None)
"""The predictor call running in this thread or task (set by :class:`RunCallback`)."""


class LMSpan:
    """The LM span(s) of one LM call: a retried request opens a new span for each attempt."""

    def __init__(self, run: FrameRun, predict_call: PredictCall | None, model: str) -> None:
        """Capture the tags and parent span current at the LM call, so every attempt's events carry them."""
        self.run = run
        self.predict_call = predict_call
        self.model = model
        self.tags = dict(context_tags.get())
        self.parent_id = current_span.get()
        self.attempts = 0
        self.failed = False
        self.stream: LMCallStream | None = None
        self.status_provider: Any = None
        """The run's status message provider (``lm_start`` / ``lm_end`` messages)."""
        state = predict_call.state if predict_call is not None else None
        self.refine_attempt = state.attempt if state is not None else None
        """The ``Refine`` / ``BestOfN`` attempt of the calling predictor (``data["attempt"]``)."""
        self._open()

    def _data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"model": self.model}
        if self.refine_attempt is not None:
            data["attempt"] = self.refine_attempt
        return data

    def _open(self) -> None:
        start, _ = make_event(
            "start",
            self._data(),
            execution=self.run.execution,
            parent_id=self.parent_id,
            tags=self.tags,
            module_name=self.model,
            operation="lm",
        )
        self.start_id = start.event_id
        self.started = time.perf_counter()
        self.failed = False
        dispatch(start, self.run.execution)

    @property
    def wants_stream(self) -> bool:
        """True when the calling predictor has a chosen output field (its request should stream)."""
        state = self.predict_call.state if self.predict_call is not None else None
        return state is not None and state.wants_stream

    def begin_attempt(self) -> LMCallStream | None:
        """A request is about to be sent; after a failed one this opens a new LM span."""
        if self.attempts and self.failed:
            self._open()
        self.attempts += 1
        call = self.predict_call
        state = call.state if call is not None else None
        if call is None or state is None or not state.wants_stream:
            self.stream = None
            return None
        self.stream = LMCallStream(self.run, state, self.start_id, self.tags, call.extra)
        return self.stream

    def fail_attempt(self, exc: BaseException) -> None:
        """The current request failed: close its fields with ``error`` and emit the LM ``error`` event."""
        if self.failed:
            return
        if isinstance(exc, ExecutionCancelled):  # not an error: the LM call ends "cancelled"
            if self.stream is not None and not self.stream.done:
                self.stream.finish_reason = CANCELLED
                self.stream.end(CANCELLED)
            self._close(None, None, finish_reason=CANCELLED)
        else:
            if self.stream is not None and not self.stream.done:
                self.stream.end(ERROR)
            self._close(exc, None)
        self.failed = True

    def finish(self, lm: Any, outputs: Any, exception: BaseException | None) -> None:
        """DSPy's LM call returned (or raised)."""
        if self.failed:
            return  # the failing attempt already reported the error
        if exception is not None:
            self.fail_attempt(exception)
            return
        if self.stream is not None and not self.stream.done:
            self.stream.end(self.stream.finish_reason or "stop")
        try:
            record_chosen(self.run, self.start_id, outputs)
        except Exception:
            logger.exception("streamll: could not read the LM's tool calls")
        if self.predict_call is not None and self.predict_call.react is not None:
            self.predict_call.react.lm_call_id = self.start_id
        self._close(None, lm, outputs)

    def _close(
        self, exception: BaseException | None, lm: Any, outputs: Any = None, finish_reason: str | None = None
    ) -> None:
        data = self._data()
        data["duration_ms"] = (time.perf_counter() - self.started) * 1000
        stream = self.stream
        if stream is not None:
            if stream.finish_reason:
                data["finish_reason"] = stream.finish_reason
            data["streamed"] = stream.chunks_with_text > 0 or stream.tool_chunks > 0
        if finish_reason is not None:
            data["finish_reason"] = finish_reason
        usage = _usage_from_history(lm, outputs) or (stream.usage if stream is not None else None)
        if usage:
            data["usage"] = usage
        if exception is not None:
            data.update(error_data(exception))
        event, _ = make_event(
            "error" if exception is not None else "end",
            data,
            execution=self.run.execution,
            parent_id=self.parent_id,
            tags=self.tags,
            module_name=self.model,
            operation="lm",
        )
        dispatch(event, self.run.execution)


class TokenRun:
    """Everything streamed during one top-level instrumented call."""

    def __init__(self, execution: Execution) -> None:
        """Nothing seen yet in ``execution``; the sets fill as predictors start and fields stream."""
        self.execution = execution
        self.chosen: set[str] = set()
        self.matched: set[str] = set()
        self.outputs_seen: set[str] = set()
        self.paths_seen: set[str] = set()
        """``path.field`` of every output field seen (for the unmatched-field warning)."""
        self.chosen_tools = ChosenCalls()
        """Tool calls LM replies asked for, to link each executed call to its LM call."""

    def unmatched_fields(self) -> set[str]:
        """Chosen ``stream_fields`` entries that matched no predictor's output in this run."""
        return self.chosen - self.matched  # chosen fills as predictors start: a run without one warns of nothing

    def emit_token(
        self,
        call: LMCallStream,
        field_name: str,
        token: str,
        index: int,
        finish: str | None,
        source: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Hand one token to the sinks as a :class:`TokenRecord` (its event is built and encoded on the worker)."""
        execution = self.execution
        if extra is None:  # the common case: one lane for every token of a field, made at its first token
            lane = call.lanes.get((field_name, source))
            if lane is None:
                lane = _lane(execution, call, field_name, source, None)
                if lane is not None:
                    call.lanes[field_name, source] = lane
        else:
            lane = _lane(execution, call, field_name, source, extra)
        if lane is not None and type(token) is str and type(index) is int and (finish is None or type(finish) is str):
            dispatch_record(TokenRecord(lane, execution.next_sequence(), token, index, finish), execution)
            return
        # not the types a model would hold as they are: validated (or coerced) the usual way
        event, _ = make_event(
            "token",
            _token_data(call, field_name, source, extra),
            execution=execution,
            parent_id=call.parent_id,
            cls=TokenEvent,
            tags=call.tags,
            token=token,
            token_index=index,
            field=field_name,
            finish_reason=finish,
            module_name=call.state.name,
            operation="token",
        )
        dispatch(event, execution)

    def native_reasoning_seen(self, state: PredictorState) -> None:
        """The LM's own reasoning streamed for ``state``'s predictor: its ``reasoning`` entry matched."""
        if state.reasoning_entry is not None:
            self.matched.add(state.reasoning_entry)

    def predictor_started(self, call: PredictCall, adapter: Any, signature: Any) -> None:
        """Give ``call`` its :class:`PredictorState`: which of its outputs stream, how its adapter formats them."""
        chosen: Any = call.frame.fields or ()
        if isinstance(chosen, str):
            chosen = (chosen,)
        outputs = signature.output_fields
        module, predict = call.frame.module, call.predict
        self.chosen.update(chosen)
        self.outputs_seen.update(outputs)
        path = predictor_path(module, predict) if chosen else None
        if path is not None:
            self.paths_seen.update(f"{path}.{name}" for name in outputs)
        choice = choose(chosen, outputs, path, type(module).__name__)
        self.matched.update(choice.matched)
        native = choice.reasoning is not None and _native_reasoning_allowed(outputs)
        stream_fields = choice.fields
        attempt = attempt_of(predict)
        call.state = state = PredictorState(
            name=predictor_name(module, predict, path) if stream_fields or native else "",
            adapter=adapter_kind(adapter),
            output_fields=list(outputs),
            stream_fields=stream_fields,
            path=path,
            attempt=attempt[1] if attempt is not None else None,
            native_reasoning=native,
            tool_field=tool_field(signature, stream_fields),
            native_tool_output=tool_field(signature, frozenset(outputs))
            if getattr(adapter, "use_native_function_calling", False)
            else None,
        )
        state.reasoning_entry = choice.reasoning if native else None
        if stream_fields:
            _typed(state, adapter, signature)

    def predictor_finished(self, call: PredictCall, outputs: Any) -> None:
        """Replay from the prediction the chosen fields its last adapter call did not stream (a cache hit)."""
        state = call.state
        if state is None or outputs is None:
            return
        missing = [name for name in state.output_fields if name in state.stream_fields - state.delivered]
        held = list(_values(outputs, missing))
        if not held:
            return
        stream = LMCallStream(self, state, current_span.get(), dict(context_tags.get()), call.extra)
        for index, (name, value) in enumerate(held):
            if name == state.tool_field:
                replay_tool_calls(stream, name, value, self.chosen_tools)
                continue
            field_stream = FieldStream(stream, name, "cache")
            field_stream.held = replay_text(value)
            extra = value_extra(value) if name in state.field_types else None
            field_stream.finish(CACHED if index == len(held) - 1 else FIELD_END, extra=extra)


def _values(outputs: Any, names: list[str]) -> Iterator[tuple[str, Any]]:
    """``(name, value)`` for each of ``names`` that ``outputs`` (a prediction) holds, in order."""
    for name in names:
        try:
            yield name, outputs[name]
        except (KeyError, TypeError):
            continue


def _lane(
    execution: Execution, call: LMCallStream, field_name: str, source: str, extra: dict[str, Any] | None
) -> TokenLane | None:
    """What ``field_name``'s tokens in ``call`` share, or ``None`` when a name is not a string (the model's way)."""
    name = call.state.name
    if type(field_name) is not str or type(name) is not str:
        return None
    data = _token_data(call, field_name, source, extra)
    return TokenLane(execution.execution_id, call.parent_id, data, call.tags, name, field_name)


def _token_data(call: LMCallStream, field_name: str, source: str, extra: dict[str, Any] | None) -> dict[str, Any]:
    """A token event's ``data`` besides the four token keys: where it comes from, its type, the call's extras."""
    state = call.state
    data: dict[str, Any] = {"predictor": state.name, "source": source}
    if state.path is not None:
        data["predictor_path"] = state.path
    if state.attempt is not None:
        data["attempt"] = state.attempt
    field_type = state.field_types.get(field_name)
    if field_type is not None:
        data["field_type"] = field_type
    if call.extra:
        data.update(call.extra)
    if extra:
        data.update(extra)
    return data


def _native_reasoning_allowed(outputs: Any) -> bool:
    """The LM's reasoning may stream as ``reasoning`` unless a text field of that name is parsed from the reply."""
    field_info = outputs.get(REASONING) if hasattr(outputs, "get") else None
    if field_info is None:
        return True
    annotation = getattr(field_info, "annotation", str)
    return annotation is not str and type_name(annotation) is None  # dspy.Reasoning


def _typed(state: PredictorState, adapter: Any, signature: Any) -> None:
    """Note the chosen fields that are not text: their type names and a parser for their values."""
    outputs = signature.output_fields
    for name in state.stream_fields:
        if name == state.tool_field:  # its tokens are each tool call's arguments, not the field's syntax
            continue
        field_type = type_name(getattr(outputs[name], "annotation", str))
        if field_type is not None:
            state.field_types[name] = field_type
    if state.field_types:
        state.values = value_parser(adapter, signature, frozenset(state.field_types))


def _usage_from_history(lm: Any, outputs: Any) -> dict[str, int] | None:
    """Token usage the LM recorded for the call that returned ``outputs`` (None without an LM or a record)."""
    history = getattr(lm, "history", None)
    if not history:
        return None
    for entry in reversed(history[-16:]):
        if isinstance(entry, dict) and entry.get("outputs") == outputs:
            return usage_dict(entry.get("usage"))
    return None


def current_lm_span() -> LMSpan | None:
    """The LM span of the request about to be sent in this thread or task, if it belongs to a run."""
    call = current_predict.get()
    return call.lm if call is not None else None


__all__ = ["CACHED", "FIELD_END", "LMSpan", "PredictCall", "TokenRun", "current_lm_span"]
