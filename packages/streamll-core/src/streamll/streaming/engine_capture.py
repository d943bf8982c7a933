"""Token capture on DSPy's native engines (dspy >= 3.4): ``Engine.complete`` reads ``Engine.stream``.

The reply is assembled by lm15's ``StreamAccumulator``, as DSPy's own streaming
path does; ``Engine.stream`` (DSPy streaming itself) is read without being taken.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from streamll.streaming.capture_support import check, safe, wanted_span, watch
from streamll.streaming.fields import LMCallStream, usage_dict
from streamll.streaming.patches import register


def _feed_event(target: LMCallStream | None, event: Any) -> None:
    """One lm15 stream event (start / delta / end) into the reply's parser."""
    if target is None:
        return
    kind = getattr(event, "type", None)
    if kind == "delta":
        delta = event.delta
        part = getattr(delta, "type", None)
        if part == "text" and delta.text:
            target.feed_text(delta.text)
        elif part == "thinking" and delta.text:  # the LM's own reasoning (reasoning_content)
            target.feed_reasoning(delta.text)
        elif part == "tool_call" and target.tool_calls is not None:  # a native tool call's arguments
            target.tool_calls.feed(delta.part_index, delta.id, delta.name, delta.input)
    elif kind == "end":
        reason = event.finish_reason
        reason = "tool_calls" if reason == "tool_call" else reason
        target.usage = usage_dict(event.usage) or target.usage
        target.finish_reason = reason
        target.end(reason or "stop")


def _assembly_error(exc: BaseException, accumulator: Any) -> None:
    """Give a StreamAssemblyError the partial reply, as DSPy's streaming path does."""
    if getattr(exc, "partial", "absent") is None:
        try:
            from dspy.clients.execution import _partial

            exc.partial = _partial(accumulator)  # type: ignore[attr-defined]
        except Exception:
            pass


def _sync_complete(complete: Any, stream: Any, accumulating: Any) -> Any:
    """``Engine.complete`` answered by reading ``Engine.stream`` (when the call streams a chosen field)."""

    @functools.wraps(complete)
    def scomplete(self: Any, request: Any) -> Any:
        span = wanted_span()
        if span is None:
            return complete(self, request)
        target = span.begin_attempt()
        accumulator = accumulating(request)
        try:
            cancelled = watch()
            events = stream(self, request)
            try:
                for event in events:
                    accumulator.push(event)
                    safe(_feed_event, target, event)
                    check(cancelled)
            finally:
                events.close()
            return accumulator.response()
        except BaseException as exc:
            _assembly_error(exc, accumulator)
            span.fail_attempt(exc)
            raise

    return scomplete


def _async_complete(complete: Any, stream: Any, accumulating: Any) -> Any:
    """The async form of :func:`_sync_complete`."""

    @functools.wraps(complete)
    async def acomplete(self: Any, request: Any) -> Any:
        span = wanted_span()
        if span is None:
            return await complete(self, request)
        target = span.begin_attempt()
        accumulator = accumulating(request)
        try:
            cancelled = watch()
            events = stream(self, request)
            try:
                async for event in events:
                    accumulator.push(event)
                    safe(_feed_event, target, event)
                    check(cancelled)
            finally:
                await events.aclose()
            return accumulator.response()
        except BaseException as exc:
            _assembly_error(exc, accumulator)
            span.fail_attempt(exc)
            raise

    return acomplete


def _sync_stream(stream: Any) -> Any:
    """``Engine.stream`` read on its way to DSPy (which streams the call itself): every event passes unchanged."""

    def sstream(self: Any, request: Any) -> Any:
        span = wanted_span()
        target = span.begin_attempt() if span is not None else None
        try:
            cancelled = watch()
            events = stream(self, request)
            try:
                for event in events:
                    safe(_feed_event, target, event)
                    check(cancelled)
                    yield event
            finally:
                events.close()
        except BaseException as exc:
            if span is not None:
                span.fail_attempt(exc)
            raise

    return functools.wraps(stream)(sstream)


def _async_stream(stream: Any) -> Any:
    """The async form of :func:`_sync_stream`."""

    async def astream(self: Any, request: Any) -> Any:
        span = wanted_span()
        target = span.begin_attempt() if span is not None else None
        try:
            cancelled = watch()
            events = stream(self, request)
            try:
                async for event in events:
                    safe(_feed_event, target, event)
                    check(cancelled)
                    yield event
            finally:
                await events.aclose()
        except BaseException as exc:
            if span is not None:
                span.fail_attempt(exc)
            raise

    return functools.wraps(stream)(astream)


def wrap_engine(cls: type) -> None:
    """Wrap ``cls.complete`` and ``cls.stream`` (a class that does not define both itself is left as it is)."""
    from dspy._vendor.lm15.result import StreamAccumulator

    complete, stream = cls.__dict__.get("complete"), cls.__dict__.get("stream")
    if complete is None or stream is None:
        return
    if inspect.iscoroutinefunction(complete):
        new_complete, new_stream = _async_complete(complete, stream, StreamAccumulator), _async_stream(stream)
    else:
        new_complete, new_stream = _sync_complete(complete, stream, StreamAccumulator), _sync_stream(stream)
    for name, new in (("complete", new_complete), ("stream", new_stream)):
        register(cls, name, new)


def install_engines() -> None:
    """Wrap DSPy's engine classes (dspy >= 3.4; nothing to do on older releases)."""
    try:
        from dspy.clients.engines import litellm_engine, lm15_engine
    except ImportError:  # dspy < 3.4: every LM call goes through dspy.clients.lm's LiteLLM functions
        return
    for cls in (lm15_engine.LM15Engine, lm15_engine.AsyncLM15Engine):
        wrap_engine(cls)
    for cls in (litellm_engine.LiteLLMEngine, litellm_engine.AsyncLiteLLMEngine):
        wrap_engine(cls)


__all__ = ["install_engines", "wrap_engine"]
