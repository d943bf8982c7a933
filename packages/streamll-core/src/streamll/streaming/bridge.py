"""The bridge between DSPy's stream channel and streamll events.

DSPy has no per-token callback: when ``settings.send_stream`` is set, every
``Predict`` streams its LM reply and sends each raw chunk to that channel
(``await stream.send(chunk)``, or ``anyio.from_thread.run(stream.send, chunk)``
on the sync path). :class:`TokenChannel` is that channel: it parses each chunk
on arrival, in order, and emits token events; nothing is queued on the way.

:class:`RunCallback` (a DSPy callback) tells the channel which signature and
adapter each predictor uses, emits the LM start / end / error events, and
replays fields that never streamed (a cache hit) from the parsed prediction.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.utils.callback import BaseCallback

from streamll.core.context import Execution, context_tags, current_span
from streamll.core.emitter import dispatch, make_event
from streamll.core.events import TokenEvent
from streamll.core.spans import error_data
from streamll.streaming.parsers import FieldParser, adapter_kind, parser_for

logger = logging.getLogger("streamll")

FIELD_END = "field_end"
"""``finish_reason`` of a field's last token when another field follows it in the same reply."""
CACHED = "cached"
"""``finish_reason`` of a field replayed whole from DSPy's cache (no stream)."""

instrumented_module: ContextVar[Any] = ContextVar("streamll_instrumented_module", default=None)
"""The innermost instrumented module being called; its ``_streamll_stream_fields`` choose the fields."""


def _chunk_parts(chunk: Any) -> tuple[str | None, str | None, Any]:
    """(content delta, finish_reason, usage) of a DSPy stream chunk (native or litellm)."""
    choices = getattr(chunk, "choices", None) or (chunk.get("choices") if isinstance(chunk, dict) else None)
    usage = getattr(chunk, "usage", None) if not isinstance(chunk, dict) else chunk.get("usage")
    if not choices:
        return None, None, usage
    choice = choices[0]
    delta = choice.get("delta") if isinstance(choice, dict) else getattr(choice, "delta", None)
    finish = choice.get("finish_reason") if isinstance(choice, dict) else getattr(choice, "finish_reason", None)
    content = delta.get("content") if isinstance(delta, dict) else getattr(delta, "content", None)
    return content, finish, usage


def _usage_dict(usage: Any) -> dict[str, int] | None:
    """Integer token counts from a usage object or dict."""
    if usage is None:
        return None
    if not isinstance(usage, dict):
        usage = usage.model_dump() if hasattr(usage, "model_dump") else getattr(usage, "__dict__", {})
    counts = {key: value for key, value in usage.items() if isinstance(value, int) and not isinstance(value, bool)}
    return counts or None


class FieldStream:
    """Token events of one field in one LM reply: indexes 0..n-1, the last with a finish_reason.

    The newest piece is held back until the next one arrives, so the field's
    last token can carry its finish_reason.
    """

    __slots__ = ("call", "field", "held", "index", "pieces")

    def __init__(self, call: LMCallStream, field_name: str) -> None:
        self.call = call
        self.field = field_name
        self.index = 0
        self.held: str | None = None
        self.pieces = 0

    def push(self, piece: str) -> None:
        if self.held is not None:
            self._emit(self.held, None)
        self.held = piece
        self.pieces += 1

    def finish(self, reason: str, source: str = "stream") -> None:
        whole = self.index == 0 and self.pieces <= 1
        if whole and source == "stream" and self.call.chunks_with_text <= 1:
            source = "single_chunk"
        self._emit(self.held or "", reason, source)
        self.held = None

    def _emit(self, token: str, finish_reason: str | None, source: str = "stream") -> None:
        self.call.run.emit_token(self.call, self.field, token, self.index, finish_reason, source)
        self.index += 1


@dataclass
class PredictorState:
    """What the channel needs to know about one predictor's current call."""

    name: str
    adapter: str
    output_fields: list[str]
    stream_fields: frozenset[str]
    delivered: set[str] = field(default_factory=set)


class LMCallStream:
    """The reply of one LM call for one predictor, parsed as it streams."""

    def __init__(self, run: TokenRun, state: PredictorState, parent_id: str | None, tags: dict[str, Any]) -> None:
        self.run = run
        self.state = state
        self.parent_id = parent_id
        self.tags = tags
        self.parser: FieldParser = parser_for(state.adapter, state.output_fields)
        self.open: dict[str, FieldStream] = {}
        self.parked: FieldStream | None = None
        self.finish_reason: str | None = None
        self.usage: dict[str, int] | None = None
        self.chunks_with_text = 0
        self.done = False

    def feed_chunk(self, chunk: Any) -> None:
        content, finish, usage = _chunk_parts(chunk)
        if usage is not None:
            self.usage = _usage_dict(usage) or self.usage
        if content:
            self.chunks_with_text += 1
            self._apply(self.parser.feed(content))
        if finish is not None:
            self.finish_reason = finish
            self.end(finish)

    def end(self, reason: str) -> None:
        """The reply is over: close what is open and give the last field ``reason``."""
        if self.done:
            return
        self.done = True
        self._apply(self.parser.finish())
        for stream in list(self.open.values()):
            self._park(stream)
        if self.parked is not None:
            self.parked.finish(reason)
            self.parked = None

    def _apply(self, ops: list[tuple[str, ...]]) -> None:
        selected = self.state.stream_fields
        for op in ops:
            kind, name = op[0], op[1]
            if name not in selected:
                continue
            if kind == "text":
                stream = self.open.get(name)
                if stream is not None:
                    stream.push(op[2])
            elif kind == "open":
                if self.parked is not None:
                    self.parked.finish(FIELD_END)
                    self.parked = None
                self.open[name] = FieldStream(self, name)
                self.state.delivered.add(name)
            elif kind == "close":
                stream = self.open.pop(name, None)
                if stream is not None:
                    self._park(stream)

    def _park(self, stream: FieldStream) -> None:
        self.open.pop(stream.field, None)
        if self.parked is not None:
            self.parked.finish(FIELD_END)
        self.parked = stream


@dataclass
class _LMSpan:
    start_id: str
    parent_id: str | None
    started: float
    model: str
    predict_id: int | None


class TokenRun:
    """Everything streamed during one top-level instrumented call."""

    def __init__(self, execution: Execution) -> None:
        self.execution = execution
        self.predictors: dict[int, PredictorState] = {}
        self.calls: dict[int, LMCallStream] = {}
        self.lm_spans: dict[str, _LMSpan] = {}
        self.chosen: set[str] = set()
        self.outputs_seen: set[str] = set()

    def unmatched_fields(self) -> set[str]:
        """Chosen field names that no predictor in this run had as an output."""
        return self.chosen - self.outputs_seen if self.outputs_seen else set()

    # --------------------------------------------------------------- channel side

    def on_chunk(self, chunk: Any) -> None:
        predict_id = getattr(chunk, "predict_id", None)
        if predict_id is None and isinstance(chunk, dict):
            predict_id = chunk.get("predict_id")
        call = self.calls.get(predict_id) if predict_id is not None else None
        if call is not None and not call.done:
            call.feed_chunk(chunk)

    def emit_token(
        self, call: LMCallStream, field_name: str, token: str, index: int, finish: str | None, source: str
    ) -> None:
        data: dict[str, Any] = {"predictor": call.state.name, "source": source}
        event, _ = make_event(
            "token",
            data,
            execution=self.execution,
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
        dispatch(event, self.execution)

    # --------------------------------------------------------------- callback side

    def predictor_started(self, predict: Any, adapter: Any, signature: Any) -> None:
        module = instrumented_module.get()
        chosen = getattr(module, "_streamll_stream_fields", None) or ()
        if isinstance(chosen, str):
            chosen = (chosen,)
        outputs = list(signature.output_fields)
        self.chosen.update(chosen)
        self.outputs_seen.update(outputs)
        name = _predictor_name(module, predict)
        self.predictors[id(predict)] = PredictorState(
            name=name,
            adapter=adapter_kind(adapter),
            output_fields=outputs,
            stream_fields=frozenset(chosen) & frozenset(outputs),
        )

    def predictor_finished(self, predict: Any, outputs: Any) -> None:
        """Replay chosen fields that produced no stream (cache hit) from the prediction."""
        state = self.predictors.pop(id(predict), None)
        self.calls.pop(id(predict), None)
        if state is None or outputs is None:
            return
        missing = [name for name in state.output_fields if name in state.stream_fields - state.delivered]
        if not missing:
            return
        call = LMCallStream(self, state, current_span.get(), dict(context_tags.get()))
        for index, name in enumerate(missing):
            try:
                value = outputs[name]
            except (KeyError, TypeError):
                continue
            text = value if isinstance(value, str) else str(value)
            reason = CACHED if index == len(missing) - 1 else FIELD_END
            stream = FieldStream(call, name)
            stream.held = text
            stream.finish(reason, source="cache")

    def lm_started(self, call_id: str, lm: Any) -> None:
        predict = dspy.settings.caller_predict
        predict_id = id(predict) if predict is not None else None
        model = str(getattr(lm, "model", type(lm).__name__))
        start, _ = make_event("start", {"model": model}, execution=self.execution, module_name=model, operation="lm")
        self.lm_spans[call_id] = _LMSpan(start.event_id, start.parent_id, time.perf_counter(), model, predict_id)
        state = self.predictors.get(predict_id) if predict_id is not None else None
        if state is not None and predict_id is not None:
            self.calls[predict_id] = LMCallStream(self, state, start.event_id, dict(context_tags.get()))
        dispatch(start, self.execution)

    def lm_finished(self, call_id: str, lm: Any, outputs: Any, exception: BaseException | None) -> None:
        span = self.lm_spans.pop(call_id, None)
        if span is None:
            return
        call = self.calls.get(span.predict_id) if span.predict_id is not None else None
        data: dict[str, Any] = {"model": span.model, "duration_ms": (time.perf_counter() - span.started) * 1000}
        if call is not None:
            if not call.done:
                call.end("error" if exception is not None else (call.finish_reason or "stop"))
            if call.finish_reason:
                data["finish_reason"] = call.finish_reason
            data["streamed"] = call.chunks_with_text > 0
        usage = (call.usage if call is not None else None) or _usage_from_history(lm, outputs)
        if usage:
            data["usage"] = usage
        if exception is not None:
            data.update(error_data(exception))
        event, _ = make_event(
            "error" if exception is not None else "end",
            data,
            execution=self.execution,
            parent_id=span.parent_id,
            module_name=span.model,
            operation="lm",
        )
        dispatch(event, self.execution)


def _usage_from_history(lm: Any, outputs: Any) -> dict[str, int] | None:
    """Token usage the LM recorded for the call that returned ``outputs``."""
    history = getattr(lm, "history", None)
    if not history:
        return None
    for entry in reversed(history[-16:]):
        if isinstance(entry, dict) and entry.get("outputs") == outputs:
            return _usage_dict(entry.get("usage"))
    return None


def _predictor_name(module: Any, predict: Any) -> str:
    """``QA.predict`` style name of a predictor inside the instrumented module."""
    owner = type(module).__name__ if module is not None else "module"
    if module is not None:
        try:
            for name, candidate in module.named_predictors():
                if candidate is predict:
                    return f"{owner}.{name}"
        except Exception:  # named_predictors walks user attributes; never fail on it
            pass
    return f"{owner}.{type(predict).__name__}"


class TokenChannel:
    """The object handed to DSPy as ``send_stream``: each chunk is parsed the moment it is sent."""

    def __init__(self, run: TokenRun) -> None:
        self.run = run

    async def send(self, chunk: Any) -> None:
        try:
            self.run.on_chunk(chunk)
        except Exception:  # a streamll bug must not break the LM call
            logger.exception("streamll: failed to process a stream chunk")


class RunCallback(BaseCallback):
    """DSPy callback feeding one :class:`TokenRun`."""

    def __init__(self, run: TokenRun) -> None:
        self.run = run
        self._lms: dict[str, Any] = {}
        self._modules: dict[str, Any] = {}

    def on_adapter_format_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        predict = dspy.settings.caller_predict
        signature = inputs.get("signature")
        if predict is not None and signature is not None:
            self.run.predictor_started(predict, instance, signature)

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        if isinstance(instance, dspy.Predict):
            self._modules[call_id] = instance

    def on_module_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        predict = self._modules.pop(call_id, None)
        if predict is not None:
            self.run.predictor_finished(predict, outputs if exception is None else None)

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._lms[call_id] = instance
        self.run.lm_started(call_id, instance)

    def on_lm_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        lm = self._lms.pop(call_id, None)
        self.run.lm_finished(call_id, lm, outputs, exception)


__all__ = ["CACHED", "FIELD_END", "RunCallback", "TokenChannel", "TokenRun", "instrumented_module"]
