"""Token capture on DSPy's LiteLLM calls (``dspy.clients.lm.litellm_completion`` / ``alitellm_completion``).

Every DSPy 3 line sends LM calls through these functions (dspy >= 3.4 when
``engine="litellm"``). The ordinary call is sent with ``stream=True`` and the
reply assembled with ``litellm.stream_chunk_builder``; when DSPy streams the
call itself (``dspy.streamify``), its stream channel is read through.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from dspy.dsp.utils.settings import settings

from streamll.streaming.bridge import LMSpan
from streamll.streaming.capture_support import check, safe, wanted_span, watch
from streamll.streaming.fields import LMCallStream
from streamll.streaming.litellm_errors import plain_failure, raise_keeping_context
from streamll.streaming.litellm_reply import assemble as _assemble
from streamll.streaming.patches import register


class _TeeStream:
    """DSPy's stream channel seen through: streamll reads each chunk, DSPy's receiver gets it unchanged."""

    def __init__(self, inner: Any, target: LMCallStream | None, cancelled: Callable[[], bool] | None) -> None:
        self._inner = inner
        self._target = target
        self._cancelled = cancelled

    async def send(self, chunk: Any) -> None:
        if self._target is not None:
            safe(self._target.feed_chunk, chunk)
        check(self._cancelled)
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


def _failed(span: LMSpan, exc: Exception, request: dict[str, Any], reading: bool, retry_left: bool) -> Exception | None:
    """Record a failed attempt: ``None`` to retry (a reply cut while read), else the exception the plain call raises."""
    failure = plain_failure(exc, request) if reading else exc
    span.fail_attempt(failure)
    if reading and retry_left:
        return None
    return failure


def _read(response: Any, target: LMCallStream | None, cancelled: Callable[[], bool] | None) -> list[Any]:
    """Every chunk of a streamed reply, each fed to the parser as it arrives; the stream is closed after."""
    chunks = []
    try:
        for chunk in response:
            chunks.append(chunk)
            if target is not None:
                safe(target.feed_chunk, chunk)
            check(cancelled)
    finally:
        close = getattr(response, "close", None)
        if callable(close):
            close()
    return chunks


async def _aread(response: Any, target: LMCallStream | None, cancelled: Callable[[], bool] | None) -> list[Any]:
    """The async form of :func:`_read`."""
    chunks = []
    try:
        async for chunk in response:
            chunks.append(chunk)
            if target is not None:
                safe(target.feed_chunk, chunk)
            check(cancelled)
    finally:
        aclose = getattr(response, "aclose", None)
        if callable(aclose):
            await aclose()
    return chunks


def _sync_wrapper(completion: Any) -> Any:
    """``litellm_completion`` sending the request as a stream (when the call streams a chosen field)."""

    @functools.wraps(completion)
    def litellm_completion(*args: Any, **kwargs: Any) -> Any:
        span = wanted_span()
        if span is None:
            return completion(*args, **kwargs)
        if settings.send_stream is not None:  # DSPy streams this call itself (dspy.streamify)
            target = span.begin_attempt()
            try:
                with settings.context(send_stream=_TeeStream(settings.send_stream, target, watch())):
                    return completion(*args, **kwargs)
            except BaseException as exc:
                span.fail_attempt(exc)
                raise
        arguments, retries = _streaming_call(completion, args, kwargs)
        for attempt in range(retries + 1):
            target = span.begin_attempt()
            reading = False
            try:
                cancelled = watch()
                response = completion(**{**arguments, "num_retries": retries - attempt})
                reading = True
                return _assemble(_read(response, target, cancelled))
            except Exception as exc:
                failure = _failed(span, exc, arguments["request"], reading, attempt < retries)
                if failure is None:
                    continue
                if failure is exc:
                    raise
                raise_keeping_context(failure)
            except BaseException as exc:
                span.fail_attempt(exc)
                raise
        raise AssertionError("unreachable")

    return litellm_completion


def _async_wrapper(acompletion: Any) -> Any:
    """The async form of :func:`_sync_wrapper` (``alitellm_completion``)."""

    @functools.wraps(acompletion)
    async def alitellm_completion(*args: Any, **kwargs: Any) -> Any:
        span = wanted_span()
        if span is None:
            return await acompletion(*args, **kwargs)
        if settings.send_stream is not None:
            target = span.begin_attempt()
            try:
                with settings.context(send_stream=_TeeStream(settings.send_stream, target, watch())):
                    return await acompletion(*args, **kwargs)
            except BaseException as exc:
                span.fail_attempt(exc)
                raise
        arguments, retries = _streaming_call(acompletion, args, kwargs)
        for attempt in range(retries + 1):
            target = span.begin_attempt()
            reading = False
            try:
                cancelled = watch()
                response = await acompletion(**{**arguments, "num_retries": retries - attempt})
                reading = True
                return _assemble(await _aread(response, target, cancelled))
            except Exception as exc:
                failure = _failed(span, exc, arguments["request"], reading, attempt < retries)
                if failure is None:
                    continue
                if failure is exc:
                    raise
                raise_keeping_context(failure)
            except BaseException as exc:
                span.fail_attempt(exc)
                raise
        raise AssertionError("unreachable")

    return alitellm_completion


def wrap_litellm(module: Any) -> None:
    """Stream DSPy's LiteLLM calls; a reply cut mid-stream is retried as LiteLLM retries a plain call.

    LiteLLM retries (``num_retries``, dspy < 3.4) cover a plain reply cut
    mid-body, but never a stream already being read; so a cut stream is
    requested again here, up to the same number of retries.
    """
    completion: Any = getattr(module, "litellm_completion", None)
    acompletion: Any = getattr(module, "alitellm_completion", None)
    if completion is None or acompletion is None:
        return
    wrappers = (("litellm_completion", _sync_wrapper(completion)), ("alitellm_completion", _async_wrapper(acompletion)))
    for name, new in wrappers:
        register(module, name, new)


__all__ = ["wrap_litellm"]
