"""Token events of output fields, parsed from one LM reply as its text streams.

:class:`LMCallStream` takes the reply's text (or raw chunks) in arrival order,
runs it through the adapter's :mod:`~streamll.streaming.parsers` parser, and
emits one token event per piece of every chosen field. A field's last token is
emitted the moment its end is known: when the next field begins (chosen or
not), or, for the reply's last field, when the reply ends (so it can carry the
LM's own ``finish_reason``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from streamll.streaming.parsers import FieldParser, parser_for

if TYPE_CHECKING:
    from streamll.streaming.bridge import TokenRun

FIELD_END = "field_end"
"""``finish_reason`` of a field's last token when another field follows it in the same reply."""
CACHED = "cached"
"""``finish_reason`` of a field replayed whole from DSPy's cache (no stream)."""
ERROR = "error"
"""``finish_reason`` of the last token of a reply cut by an error (its text is partial)."""
CANCELLED = "cancelled"
"""``finish_reason`` of the last token of a reply whose execution was cancelled (its text is partial)."""


@dataclass
class PredictorState:
    """What the stream needs to know about one predictor call: its adapter and fields."""

    name: str
    adapter: str
    output_fields: list[str]
    stream_fields: frozenset[str]
    delivered: set[str] = field(default_factory=set)
    tool_field: str | None = None
    """The chosen ``dspy.ToolCalls`` output field: native tool calls' arguments stream as its tokens."""


def chunk_parts(chunk: Any) -> tuple[str | None, str | None, Any]:
    """(content delta, finish_reason, usage) of an OpenAI-style stream chunk (object or dict)."""
    is_dict = isinstance(chunk, dict)
    choices = chunk.get("choices") if is_dict else getattr(chunk, "choices", None)
    usage = chunk.get("usage") if is_dict else getattr(chunk, "usage", None)
    if not choices:
        return None, None, usage
    choice = choices[0]
    delta = choice.get("delta") if isinstance(choice, dict) else getattr(choice, "delta", None)
    finish = choice.get("finish_reason") if isinstance(choice, dict) else getattr(choice, "finish_reason", None)
    content = delta.get("content") if isinstance(delta, dict) else getattr(delta, "content", None)
    return content, finish, usage


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
    if not choices:
        return []
    calls = _get(_get(choices[0], "delta"), "tool_calls") if _get(choices[0], "delta") is not None else None
    parts = []
    for call in calls or ():
        function = _get(call, "function")
        index = _get(call, "index")
        parts.append(
            (
                index if isinstance(index, int) else 0,
                _get(call, "id") or None,
                (_get(function, "name") or None) if function is not None else None,
                (_get(function, "arguments") or "") if function is not None else "",
            )
        )
    return parts


class ToolCallStreams:
    """Native tool calls' argument text of one LM reply, one token sequence per call.

    Each call's tokens carry ``tool_call_id``, ``tool_index`` and ``tool_name``
    in ``data``; ``token_index`` counts per call, and each call's last token has
    the reply's ``finish_reason`` (``tool_calls``).
    """

    def __init__(self, call: LMCallStream) -> None:
        self.call = call
        self.streams: dict[int, FieldStream] = {}

    def feed(self, index: int, call_id: str | None, name: str | None, arguments: str) -> None:
        stream = self.streams.get(index)
        if stream is None:
            field_name = self.call.state.tool_field or ""
            extra: dict[str, Any] = {"tool_index": index}
            stream = self.streams[index] = FieldStream(self.call, field_name, extra)
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
        for stream in self.streams.values():
            stream.finish(reason)
        self.streams.clear()


class FieldStream:
    """Token events of one field in one LM reply: indexes 0..n-1, the last with a finish_reason.

    The newest piece is held back until the next one arrives, so the field's
    last token can carry its finish_reason.
    """

    __slots__ = ("call", "extra", "field", "held", "index", "pieces")

    def __init__(self, call: LMCallStream, field_name: str, extra: dict[str, Any] | None = None) -> None:
        self.call = call
        self.field = field_name
        self.extra = extra
        """Keys the token events carry in ``data`` besides the call's (a tool call's id, index and name)."""
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
        self.call.run.emit_token(self.call, self.field, token, self.index, finish_reason, source, self.extra)
        self.index += 1


class LMCallStream:
    """The reply of one LM request for one predictor call, parsed as it streams."""

    def __init__(
        self,
        run: TokenRun,
        state: PredictorState,
        parent_id: str | None,
        tags: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.run = run
        self.state = state
        self.parent_id = parent_id
        self.tags = tags
        self.extra = extra or {}
        """Keys every token event of this reply carries in ``data`` (``step`` for a ReAct iteration)."""
        self.parser: FieldParser = parser_for(state.adapter, state.output_fields)
        self.open: dict[str, FieldStream] = {}
        self.tool_calls: ToolCallStreams | None = ToolCallStreams(self) if state.tool_field else None
        self.parked: FieldStream | None = None
        self.unseen = set(state.output_fields)
        self.finish_reason: str | None = None
        self.usage: dict[str, int] | None = None
        self.chunks_with_text = 0
        self.tool_chunks = 0
        """Chunks that carried tool-call argument text (native function calling)."""
        self.done = False

    def feed_text(self, content: str) -> None:
        """The next piece of the reply's text."""
        if content and not self.done:
            self.chunks_with_text += 1
            self._apply(self.parser.feed(content))

    def feed_chunk(self, chunk: Any) -> None:
        """An OpenAI-style chunk (litellm ``ModelResponseStream`` or DSPy's listener chunk)."""
        content, finish, usage = chunk_parts(chunk)
        if usage is not None:
            self.usage = usage_dict(usage) or self.usage
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
        if self.parked is not None:
            self.parked.finish(reason)
            self.parked = None
        if self.tool_calls is not None:
            self.tool_calls.end(reason)

    def _apply(self, ops: list[tuple[str, ...]]) -> None:
        selected = self.state.stream_fields
        for op in ops:
            kind, name = op[0], op[1]
            if kind == "open":
                self.unseen.discard(name)
                if self.parked is not None:  # the parked field was not the reply's last after all
                    self.parked.finish(FIELD_END)
                    self.parked = None
            if name not in selected:
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
            self.parked.finish(FIELD_END)
            self.parked = None
        if self.unseen:
            stream.finish(FIELD_END)
        else:
            self.parked = stream


__all__ = [
    "CACHED",
    "chunk_tool_calls",
    "CANCELLED",
    "ERROR",
    "FIELD_END",
    "FieldStream",
    "LMCallStream",
    "PredictorState",
    "chunk_parts",
    "usage_dict",
]
