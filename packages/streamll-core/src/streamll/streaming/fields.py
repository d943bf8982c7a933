"""Token events of output fields, parsed from one LM reply as its text streams.

:class:`LMCallStream` takes the reply's text (or raw chunks) in arrival order,
runs it through the adapter's :mod:`~streamll.streaming.parsers` parser, and
emits one token event per piece of every chosen field. A field's last token is
emitted the moment its end is known: when the next field begins (chosen or
not), or, for the reply's last field, when the reply ends (so it can carry the
LM's own ``finish_reason``). A typed (non-``str``) field's last token waits for
the reply's end, to carry the parsed value (:mod:`~streamll.streaming.typed`).
The LM's own reasoning (``reasoning_content`` pieces, :meth:`LMCallStream.feed_reasoning`)
streams as the ``reasoning`` field with source ``native``, ending when the text begins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from streamll.streaming.parsers import FieldParser, parser_for

if TYPE_CHECKING:
    from streamll.core.records import TokenLane

FIELD_END = "field_end"
"""``finish_reason`` of a field's last token when another field follows it in the same reply."""
CACHED = "cached"
"""``finish_reason`` of a field replayed whole from DSPy's cache (no stream)."""
ERROR = "error"
"""``finish_reason`` of the last token of a reply cut by an error (its text is partial)."""
CANCELLED = "cancelled"
"""``finish_reason`` of the last token of a reply whose execution was cancelled (its text is partial)."""


NATIVE = "native"
"""``source`` of the tokens of the LM's own reasoning (``reasoning_content`` deltas), streamed as ``reasoning``."""
REASONING = "reasoning"


@dataclass
class PredictorState:
    """What the stream needs to know about one predictor call: its adapter, fields and where it sits."""

    name: str
    adapter: str
    output_fields: list[str]
    stream_fields: frozenset[str]
    delivered: set[str] = field(default_factory=set)
    path: str | None = None
    """The predictor's attribute path in the instrumented module (``named_predictors()``)."""
    attempt: int | None = None
    """The ``Refine`` / ``BestOfN`` attempt this call belongs to (1, 2, ...)."""
    native_reasoning: bool = False
    """``reasoning`` is chosen and the LM's own reasoning (``reasoning_content``) may stream as that field."""
    field_types: dict[str, str] = field(default_factory=dict)
    """Type names of chosen non-text fields (``"bool"``, ``"list[str]"``)."""
    values: Callable[[str], dict[str, Any]] | None = None
    """Parses the whole reply into the chosen typed fields' values (JSON-encodable), when possible."""
    reasoning_entry: str | None = None
    """The ``stream_fields`` entry that chose native reasoning for this predictor."""
    tool_field: str | None = None
    """The chosen ``dspy.ToolCalls`` output field: native tool calls' arguments stream as its tokens."""
    native_tool_output: str | None = None
    """The ``dspy.ToolCalls`` output of an adapter using native function calling: never in the reply's text."""

    @property
    def wants_stream(self) -> bool:
        """True when something of this predictor's reply is streamed as token events."""
        return bool(self.stream_fields) or self.native_reasoning


def chunk_parts(chunk: Any) -> tuple[str | None, str | None, Any, str | None]:
    """(content delta, finish_reason, usage, reasoning_content delta) of an OpenAI-style stream chunk."""
    is_dict = isinstance(chunk, dict)
    choices = chunk.get("choices") if is_dict else getattr(chunk, "choices", None)
    usage = chunk.get("usage") if is_dict else getattr(chunk, "usage", None)
    if not choices:
        return None, None, usage, None
    choice = choices[0]
    delta = choice.get("delta") if isinstance(choice, dict) else getattr(choice, "delta", None)
    finish = choice.get("finish_reason") if isinstance(choice, dict) else getattr(choice, "finish_reason", None)
    if isinstance(delta, dict):
        content, reasoning = delta.get("content"), delta.get("reasoning_content")
    else:
        content, reasoning = getattr(delta, "content", None), getattr(delta, "reasoning_content", None)
    return content, finish, usage, reasoning if isinstance(reasoning, str) else None


def usage_dict(usage: Any) -> dict[str, int] | None:
    """Integer token counts from a usage object, dataclass or dict."""
    if usage is None:
        return None
    if not isinstance(usage, dict):
        if dataclasses.is_dataclass(usage) and not isinstance(usage, type):
            usage = dataclasses.asdict(usage)
        elif hasattr(usage, "model_dump"):
            usage = usage.model_dump()
        else:
            usage = getattr(usage, "__dict__", {})
    counts = {key: value for key, value in usage.items() if isinstance(value, int) and not isinstance(value, bool)}
    return counts or None


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, dict) else getattr(item, key, None)


def chunk_tool_calls(chunk: Any) -> list[tuple[int, str | None, str | None, str]]:
    """(index, id, name, argument fragment) of each ``delta.tool_calls`` entry of an OpenAI-style chunk."""
    choices = _get(chunk, "choices")
    delta = _get(choices[0], "delta") if choices else None
    parts = []
    for call in (_get(delta, "tool_calls") if delta is not None else None) or ():
        function = _get(call, "function")
        index = _get(call, "index")
        name = _get(function, "name") if function is not None else None
        arguments = _get(function, "arguments") if function is not None else None
        parts.append((index if isinstance(index, int) else 0, _get(call, "id") or None, name or None, arguments or ""))
    return parts


class ReplyRun(Protocol):
    """What a reply's token streams need of their run (:class:`~streamll.streaming.bridge.TokenRun`).

    Declared here so this module does not depend on the run's own module, which builds on it.
    """

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
        """Hand one token of ``call``'s reply to the sinks."""

    def native_reasoning_seen(self, state: PredictorState) -> None:
        """Note that the LM's own reasoning streamed for ``state``'s predictor."""


class ToolCallStreams:
    """Native tool calls' argument text of one LM reply, one token sequence per call.

    Each call's tokens carry ``tool_call_id``, ``tool_index`` and ``tool_name``
    in ``data``; ``token_index`` counts per call, and each call's last token has
    the reply's ``finish_reason`` (``tool_calls``).
    """

    def __init__(self, call: LMCallStream) -> None:
        """No call yet: each call's stream opens when its first piece arrives."""
        self.call = call
        self.streams: dict[int, FieldStream] = {}

    def feed(self, index: int, call_id: str | None, name: str | None, arguments: str) -> None:
        """One piece of call ``index``'s argument text; its id and name are noted the first time the LM sends them."""
        stream = self.streams.get(index)
        if stream is None:
            field_name = self.call.state.tool_field or ""
            stream = self.streams[index] = FieldStream(self.call, field_name, extra={"tool_index": index})
            self.call.state.delivered.add(field_name)
        extra = stream.extra if stream.extra is not None else {}
        if call_id and "tool_call_id" not in extra:
            extra["tool_call_id"] = call_id
        if name and "tool_name" not in extra:
            extra["tool_name"] = name
        if arguments:
            self.call.tool_chunks += 1
            stream.push(arguments)

    def end(self, reason: str) -> None:
        """Close every call's token sequence with the reply's finish ``reason``."""
        for stream in self.streams.values():
            stream.finish(reason)
        self.streams.clear()


class FieldStream:
    """Token events of one field in one LM reply: indexes 0..n-1, the last with a finish_reason.

    The newest piece is held back until the next one arrives, so the field's
    last token can carry its finish_reason.
    """

    __slots__ = ("call", "extra", "field", "held", "index", "pieces", "source")

    def __init__(
        self, call: LMCallStream, field_name: str, source: str = "stream", extra: dict[str, Any] | None = None
    ) -> None:
        """``field_name``'s tokens in ``call``'s reply; ``extra`` goes into every token's ``data``."""
        self.call = call
        self.field = field_name
        self.index = 0
        self.held: str | None = None
        self.pieces = 0
        self.source = source
        self.extra = extra
        """Keys every token of this stream carries in ``data`` (a tool call's id, index and name)."""

    def push(self, piece: str) -> None:
        """Hold ``piece`` back and emit the one before it, now known not to be the field's last."""
        if self.held is not None:
            self._emit(self.held, None, self.source)
        self.held = piece
        self.pieces += 1

    def finish(self, reason: str, source: str | None = None, extra: dict[str, Any] | None = None) -> None:
        """Emit the held piece as the field's last token (``single_chunk`` when it came whole in one chunk)."""
        source = source or self.source
        whole = self.index == 0 and self.pieces <= 1
        if whole and source == "stream" and self.call.chunks_with_text <= 1:
            source = "single_chunk"
        self._emit(self.held or "", reason, source, extra)
        self.held = None

    def _emit(self, token: str, finish_reason: str | None, source: str, extra: dict[str, Any] | None = None) -> None:
        if self.extra:
            extra = {**self.extra, **extra} if extra else self.extra
        self.call.run.emit_token(self.call, self.field, token, self.index, finish_reason, source, extra)
        self.index += 1


class LMCallStream:
    """The reply of one LM request for one predictor call, parsed as it streams."""

    def __init__(
        self,
        run: ReplyRun,
        state: PredictorState,
        parent_id: str | None,
        tags: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Parse ``state``'s predictor reply with its adapter's parser; ``extra`` goes into every token's ``data``."""
        self.run = run
        self.state = state
        self.parent_id = parent_id
        self.tags = tags
        self.extra = extra or {}
        """Keys every token event of this reply carries in ``data`` (``step`` for a ReAct iteration)."""
        self.lanes: dict[tuple[str, str], TokenLane] = {}
        """What the reply's tokens of one (field, source) share: the records of those tokens refer to it."""
        self.parser: FieldParser = parser_for(state.adapter, state.output_fields)
        self.open: dict[str, FieldStream] = {}
        self.tool_calls: ToolCallStreams | None = ToolCallStreams(self) if state.tool_field else None
        self.parked: FieldStream | None = None
        self.unseen = set(state.output_fields) - {state.native_tool_output}
        """Output fields the reply's text may still open: a field that closes while none is left may be its last."""
        self.finish_reason: str | None = None
        self.usage: dict[str, int] | None = None
        self.chunks_with_text = 0
        self.tool_chunks = 0
        """Chunks that carried tool-call argument text (native function calling)."""
        self.done = False
        self.reasoning: FieldStream | None = None
        """The LM's own reasoning (``reasoning_content``) streaming as the ``reasoning`` field."""
        self.native_done = False
        self.text: list[str] | None = [] if state.values is not None else None
        """The reply's text so far, kept only to parse typed fields' values at its end."""
        self.deferred: list[tuple[FieldStream, str]] = []
        """Typed fields whose last token waits for the reply's end (and the parsed value)."""

    def feed_text(self, content: str) -> None:
        """The next piece of the reply's text."""
        if content and not self.done:
            self.chunks_with_text += 1
            if self.reasoning is not None:
                self._end_native(FIELD_END)
            if self.text is not None:
                self.text.append(content)
            self._apply(self.parser.feed(content))

    def feed_reasoning(self, content: str) -> None:
        """The next piece of the LM's own reasoning (a ``reasoning_content`` delta)."""
        if not content or self.done or self.native_done or not self.state.native_reasoning:
            return
        if self.reasoning is None:
            self.reasoning = FieldStream(self, REASONING, NATIVE)
            self.state.delivered.add(REASONING)
            self.run.native_reasoning_seen(self.state)
        self.reasoning.push(content)

    def _end_native(self, reason: str) -> None:
        if self.reasoning is not None:
            self.reasoning.finish(reason)
            self.reasoning = None
            self.native_done = True

    def feed_chunk(self, chunk: Any) -> None:
        """An OpenAI-style chunk (litellm ``ModelResponseStream`` or DSPy's listener chunk)."""
        content, finish, usage, reasoning = chunk_parts(chunk)
        if usage is not None:
            self.usage = usage_dict(usage) or self.usage
        if reasoning:
            self.feed_reasoning(reasoning)
        if content:
            self.feed_text(content)
        if self.tool_calls is not None:
            for index, call_id, name, arguments in chunk_tool_calls(chunk):
                self.tool_calls.feed(index, call_id, name, arguments)
        if finish is not None:
            self.finish_reason = finish
            self.end(finish)

    def end(self, reason: str) -> None:
        """The reply is over: close what is open and give the last field ``reason``."""
        if self.done:
            return
        self.done = True
        self.unseen = set()  # nothing follows: what closes now ends the reply
        self._apply(self.parser.finish())
        for stream in list(self.open.values()):
            self._park(stream)
        if self.reasoning is not None:  # the reply had reasoning and no text (or nothing chosen after it)
            self._end_native(reason if self.parked is None and not self.deferred else FIELD_END)
        if self.parked is not None:  # the text's last field; native tool calls after it end the reply instead
            self._finish(self.parked, FIELD_END if self.tool_calls is not None and self.tool_calls.streams else reason)
            self.parked = None
        self._flush_deferred(reason)
        if self.tool_calls is not None:
            self.tool_calls.end(reason)

    def _flush_deferred(self, reason: str) -> None:
        """Emit the held last tokens of typed fields, each with its parsed value (when the reply parses)."""
        if not self.deferred:
            return
        values: dict[str, Any] = {}
        if self.state.values is not None and self.text is not None and reason not in (ERROR, CANCELLED):
            values = self.state.values("".join(self.text))
        for stream, stream_reason in self.deferred:
            extra = {"value": values[stream.field]} if stream.field in values else None
            stream.finish(stream_reason, extra=extra)
        self.deferred = []

    def _finish(self, stream: FieldStream, reason: str) -> None:
        """A field's text is complete: a typed field waits for the reply's end, a text field ends now."""
        if stream.field in self.state.field_types:
            self.deferred.append((stream, reason))
        else:
            stream.finish(reason)

    def _apply(self, ops: list[tuple[str, ...]]) -> None:
        selected = self.state.stream_fields
        for op in ops:
            kind, name = op[0], op[1]
            if kind == "open":
                self.unseen.discard(name)
                if self.parked is not None:  # the parked field was not the reply's last after all
                    self._finish(self.parked, FIELD_END)
                    self.parked = None
            if name not in selected or (name == REASONING and self.native_done):
                continue
            if kind == "text":
                stream = self.open.get(name)
                if stream is not None:
                    stream.push(op[2])
            elif kind == "open":
                self.open[name] = FieldStream(self, name)
                self.state.delivered.add(name)
            elif kind == "close":
                stream = self.open.pop(name, None)
                if stream is not None:
                    self._park(stream)

    def _park(self, stream: FieldStream) -> None:
        """A field's text is complete: emit its last token now, unless it may be the reply's last field."""
        self.open.pop(stream.field, None)
        if self.parked is not None:
            self._finish(self.parked, FIELD_END)
            self.parked = None
        if self.unseen:
            self._finish(stream, FIELD_END)
        else:
            self.parked = stream


__all__ = [
    "CACHED",
    "NATIVE",
    "CANCELLED",
    "ERROR",
    "FIELD_END",
    "FieldStream",
    "LMCallStream",
    "PredictorState",
    "ReplyRun",
    "ToolCallStreams",
    "chunk_parts",
    "chunk_tool_calls",
    "usage_dict",
]
