"""Token capture below DSPy: the LM request streams, DSPy receives the assembled reply.

DSPy's own stream channel (``settings.send_stream``) changes how DSPy runs:
it stops retrying and stops the ChatAdapter -> JSONAdapter fallback once a
chunk has gone out, and its sync path needs an AnyIO worker thread. So
streamll never touches it. Instead, while a predictor with a chosen field
calls its LM, the request that DSPy would send as an ordinary call is sent as
a streaming one; each piece of text is parsed as it arrives, and DSPy gets
back exactly the value type the ordinary call returns:

* native engines (dspy >= 3.4, ``Engine.complete``): ``Engine.stream`` events
  assembled by lm15's ``StreamAccumulator``, as DSPy's own streaming path does;
* LiteLLM (``dspy.clients.lm.litellm_completion`` / ``alitellm_completion``,
  every DSPy 3 line): ``stream=True`` and ``litellm.stream_chunk_builder``.

Errors surface from the same call DSPy made, so its retry loop and adapter
fallback see them as before. When DSPy itself streams (a user's
``dspy.streamify``), streamll reads the same chunks without taking them.

The wrappers are in place only while an instrumented call runs
(:mod:`~streamll.streaming.patches`) and do nothing unless the current thread
or task runs an LM call of an instrumented predictor with a chosen field.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any

from dspy.dsp.utils.settings import settings

from streamll.core.runs import ExecutionCancelled, cancel_flag
from streamll.streaming.bridge import LMSpan, current_lm_span
from streamll.streaming.fields import LMCallStream, usage_dict
from streamll.streaming.litellm_errors import plain_failure, raise_keeping_context
from streamll.streaming.litellm_reply import assemble as _assemble
from streamll.streaming.patches import activate, deactivate, register

logger = logging.getLogger("streamll")

WRAPPED_ATTR = "__streamll_wrapped__"


def _span() -> LMSpan | None:
    span = current_lm_span()
    return span if span is not None and span.wants_stream else None


def _watch() -> Callable[[], bool] | None:
    """The current run's cancellation check for this request (``None`` outside ``streamll.execution()``).

    Taken once per request, so a chunk costs one ``Event.is_set`` call; raises
    :class:`ExecutionCancelled` when the run was already asked to stop, before
    the request is sent.
    """
    cancelled = cancel_flag()
    if cancelled is not None and cancelled():
        _stop()
    return cancelled


def _stop() -> None:
    """Stop reading the LM stream (the caller closes it): the run was asked to stop."""
    raise ExecutionCancelled("the execution was cancelled")


def _safe(feed: Any, *args: Any) -> None:
    """Feed the parser; a streamll bug must never break the LM call."""
    try:
        feed(*args)
    except Exception:
        logger.exception("streamll: failed to process a stream chunk")


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


# ---------------------------------------------------------------------------- native engines (dspy >= 3.4)


def _assembly_error(exc: BaseException, accumulator: Any) -> None:
    """Give a StreamAssemblyError the partial reply, as DSPy's streaming path does."""
    if getattr(exc, "partial", "absent") is None:
        try:
            from dspy.clients.execution import _partial

            exc.partial = _partial(accumulator)  # type: ignore[attr-defined]
        except Exception:
            pass


def _wrap_engine(cls: type) -> None:
    from dspy._vendor.lm15.result import StreamAccumulator

    complete, stream = cls.__dict__.get("complete"), cls.__dict__.get("stream")
    if complete is None or stream is None or getattr(complete, WRAPPED_ATTR, False):
        return
    asynchronous = _is_async(complete)

    if asynchronous:

        @functools.wraps(complete)
        async def acomplete(self: Any, request: Any) -> Any:
            span = _span()
            if span is None:
                return await complete(self, request)
            target = span.begin_attempt()
            accumulator = StreamAccumulator(request)
            try:
                cancelled = _watch()
                events = stream(self, request)
                try:
                    async for event in events:
                        accumulator.push(event)
                        _safe(_feed_event, target, event)
                        if cancelled is not None and cancelled():
                            _stop()
                finally:
                    await events.aclose()
                return accumulator.response()
            except BaseException as exc:
                _assembly_error(exc, accumulator)
                span.fail_attempt(exc)
                raise

        async def astream(self: Any, request: Any) -> Any:
            span = _span()
            target = span.begin_attempt() if span is not None else None
            try:
                cancelled = _watch()
                events = stream(self, request)
                try:
                    async for event in events:
                        _safe(_feed_event, target, event)
                        if cancelled is not None and cancelled():
                            _stop()
                        yield event
                finally:
                    await events.aclose()
            except BaseException as exc:
                if span is not None:
                    span.fail_attempt(exc)
                raise

        new_complete, new_stream = acomplete, functools.wraps(stream)(astream)
    else:

        @functools.wraps(complete)
        def scomplete(self: Any, request: Any) -> Any:
            span = _span()
            if span is None:
                return complete(self, request)
            target = span.begin_attempt()
            accumulator = StreamAccumulator(request)
            try:
                cancelled = _watch()
                events = stream(self, request)
                try:
                    for event in events:
                        accumulator.push(event)
                        _safe(_feed_event, target, event)
                        if cancelled is not None and cancelled():
                            _stop()
                finally:
                    events.close()
                return accumulator.response()
            except BaseException as exc:
                _assembly_error(exc, accumulator)
                span.fail_attempt(exc)
                raise

        def sstream(self: Any, request: Any) -> Any:
            span = _span()
            target = span.begin_attempt() if span is not None else None
            try:
                cancelled = _watch()
                events = stream(self, request)
                try:
                    for event in events:
                        _safe(_feed_event, target, event)
                        if cancelled is not None and cancelled():
                            _stop()
                        yield event
                finally:
                    events.close()
            except BaseException as exc:
                if span is not None:
                    span.fail_attempt(exc)
                raise

        new_complete, new_stream = scomplete, functools.wraps(stream)(sstream)
    for name, new in (("complete", new_complete), ("stream", new_stream)):
        setattr(new, WRAPPED_ATTR, True)
        register(cls, name, new)


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn)


def _install_engines() -> None:  # builds the engine wrappers
    try:
        from dspy.clients.engines import litellm_engine, lm15_engine
    except ImportError:  # dspy < 3.4: every LM call goes through dspy.clients.lm's LiteLLM functions
        return
    for cls in (lm15_engine.LM15Engine, lm15_engine.AsyncLM15Engine):
        _wrap_engine(cls)
    for cls in (litellm_engine.LiteLLMEngine, litellm_engine.AsyncLiteLLMEngine):
        _wrap_engine(cls)


# ---------------------------------------------------------------------------- LiteLLM (every DSPy 3 line)


class _TeeStream:
    """DSPy's stream channel seen through: streamll reads each chunk, DSPy's receiver gets it unchanged."""

    def __init__(self, inner: Any, target: LMCallStream | None, cancelled: Callable[[], bool] | None) -> None:
        self._inner = inner
        self._target = target
        self._cancelled = cancelled

    async def send(self, chunk: Any) -> None:
        if self._target is not None:
            _safe(self._target.feed_chunk, chunk)
        if self._cancelled is not None and self._cancelled():
            _stop()
        await self._inner.send(chunk)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _streaming_call(completion: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The call's arguments by name, the request asking for a stream (with usage, as a plain reply has)."""
    arguments = inspect.signature(completion).bind(*args, **kwargs).arguments
    request = dict(arguments["request"])
    request["stream"] = True
    request["stream_options"] = {**(request.get("stream_options") or {}), "include_usage": True}
    arguments["request"] = request
    return arguments, int(arguments.get("num_retries") or 0)


def _wrap_litellm(module: Any) -> None:
    """Stream DSPy's LiteLLM calls; a reply cut mid-stream is retried as LiteLLM retries a plain call.

    LiteLLM retries (``num_retries``, dspy < 3.4) cover a plain reply cut
    mid-body, but never a stream already being read; so a cut stream is
    requested again here, up to the same number of retries.
    """
    completion: Any = getattr(module, "litellm_completion", None)
    acompletion: Any = getattr(module, "alitellm_completion", None)
    if completion is None or acompletion is None or getattr(completion, WRAPPED_ATTR, False):
        return

    @functools.wraps(completion)
    def litellm_completion(*args: Any, **kwargs: Any) -> Any:
        span = _span()
        if span is None:
            return completion(*args, **kwargs)
        if settings.send_stream is not None:  # DSPy streams this call itself (dspy.streamify)
            target = span.begin_attempt()
            try:
                with settings.context(send_stream=_TeeStream(settings.send_stream, target, _watch())):
                    return completion(*args, **kwargs)
            except BaseException as exc:
                span.fail_attempt(exc)
                raise
        arguments, retries = _streaming_call(completion, args, kwargs)
        for attempt in range(retries + 1):
            target = span.begin_attempt()
            reading = False
            try:
                cancelled = _watch()
                response = completion(**{**arguments, "num_retries": retries - attempt})
                chunks = []
                reading = True
                try:
                    for chunk in response:
                        chunks.append(chunk)
                        if target is not None:
                            _safe(target.feed_chunk, chunk)
                        if cancelled is not None and cancelled():
                            _stop()
                finally:
                    close = getattr(response, "close", None)
                    if callable(close):
                        close()
                return _assemble(chunks)
            except Exception as exc:
                failure = plain_failure(exc, arguments["request"]) if reading else exc
                span.fail_attempt(failure)
                if reading and attempt < retries:
                    continue
                if failure is exc:
                    raise
                raise_keeping_context(failure)
            except BaseException as exc:
                span.fail_attempt(exc)
                raise
        raise AssertionError("unreachable")

    @functools.wraps(acompletion)
    async def alitellm_completion(*args: Any, **kwargs: Any) -> Any:
        span = _span()
        if span is None:
            return await acompletion(*args, **kwargs)
        if settings.send_stream is not None:
            target = span.begin_attempt()
            try:
                with settings.context(send_stream=_TeeStream(settings.send_stream, target, _watch())):
                    return await acompletion(*args, **kwargs)
            except BaseException as exc:
                span.fail_attempt(exc)
                raise
        arguments, retries = _streaming_call(acompletion, args, kwargs)
        for attempt in range(retries + 1):
            target = span.begin_attempt()
            reading = False
            try:
                cancelled = _watch()
                response = await acompletion(**{**arguments, "num_retries": retries - attempt})
                chunks = []
                reading = True
                try:
                    async for chunk in response:
                        chunks.append(chunk)
                        if target is not None:
                            _safe(target.feed_chunk, chunk)
                        if cancelled is not None and cancelled():
                            _stop()
                finally:
                    aclose = getattr(response, "aclose", None)
                    if callable(aclose):
                        await aclose()
                return _assemble(chunks)
            except Exception as exc:
                failure = plain_failure(exc, arguments["request"]) if reading else exc
                span.fail_attempt(failure)
                if reading and attempt < retries:
                    continue
                if failure is exc:
                    raise
                raise_keeping_context(failure)
            except BaseException as exc:
                span.fail_attempt(exc)
                raise
        raise AssertionError("unreachable")

    for name, new in (("litellm_completion", litellm_completion), ("alitellm_completion", alitellm_completion)):
        setattr(new, WRAPPED_ATTR, True)
        register(module, name, new)


def prepare() -> None:
    """Build every wrapper once (called by :func:`~streamll.streaming.patches.activate` under its lock)."""
    from dspy.clients import lm as lm_module

    from streamll.streaming.attempts import prepare_attempts
    from streamll.streaming.hooks import prepare_hooks

    prepare_hooks()
    prepare_attempts()
    _install_engines()
    _wrap_litellm(lm_module)


@contextlib.contextmanager
def capturing() -> Iterator[None]:
    """The wrappers are in place for the duration of one instrumented call."""
    activate(prepare)
    try:
        yield
    finally:
        deactivate()


__all__ = ["capturing", "prepare"]
