"""Where streamll learns what DSPy is doing: thin wrappers on three DSPy methods.

* ``Predict.forward`` / ``aforward``: which predictor runs (and, at its end, the
  prediction, to replay chosen fields served from DSPy's cache);
* ``Adapter.__call__`` / ``acall`` (the base pipeline every adapter reaches):
  the adapter and signature of the request about to be made;
* ``BaseLM.__call__`` / ``acall``: one LM span per LM call (start, end or error).

The wrappers are in place only while an instrumented call runs
(:mod:`~streamll.streaming.patches`); each first looks for the frame of an
instrumented call in DSPy's settings and, when there is none (code running
alongside in another thread), calls the original at once. DSPy's callback machinery is
not used, so DSPy keeps its no-callback fast path and the user's own callbacks
see exactly what they see without streamll.
"""

from __future__ import annotations

import functools
import logging
from contextvars import Token
from typing import Any

from streamll.streaming import status
from streamll.streaming.bridge import LMSpan, PredictCall, current_predict
from streamll.streaming.frames import adopt, current_frame
from streamll.streaming.patches import register
from streamll.streaming.tools import prepare_tools, react_step

logger = logging.getLogger("streamll")


def _reset(tokens: list[Token[Any]]) -> None:
    for token in reversed(tokens):
        token.var.reset(token)


def _enter_predict(predict: Any) -> tuple[PredictCall, list[Token[Any]]] | None:
    frame = current_frame()
    if frame is None:
        return None
    call = PredictCall(predict, frame)
    try:
        react = react_step(predict)
    except Exception:
        logger.exception("streamll: could not follow the ReAct iteration")
        react = None
    if react is not None:
        call.react = react
        call.extra = {"step": react.step}
    tokens = adopt(frame)
    tokens.append(current_predict.set(call))
    return call, tokens


def _finished(call: PredictCall, outputs: Any) -> None:
    try:
        call.frame.run.predictor_finished(call, outputs)
    except Exception:
        logger.exception("streamll: could not replay cached fields")
    status.report(status.provider_for(call.frame.module), "module_end", outputs)


def _report_start(call: PredictCall, predict: Any, kwargs: dict[str, Any]) -> None:
    status.report(status.provider_for(call.frame.module), "module_start", predict, kwargs)


def _wrap_predict(cls: type) -> None:
    forward, aforward = cls.__dict__["forward"], cls.__dict__.get("aforward")

    @functools.wraps(forward)
    def sync_forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        entered = _enter_predict(self)
        if entered is None:
            return forward(self, *args, **kwargs)
        call, tokens = entered
        _report_start(call, self, kwargs)
        try:
            outputs = forward(self, *args, **kwargs)
            _finished(call, outputs)
            return outputs
        finally:
            _reset(tokens)

    register(cls, "forward", sync_forward)
    if aforward is None:
        return

    @functools.wraps(aforward)
    async def async_forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        entered = _enter_predict(self)
        if entered is None:
            return await aforward(self, *args, **kwargs)
        call, tokens = entered
        _report_start(call, self, kwargs)
        try:
            outputs = await aforward(self, *args, **kwargs)
            _finished(call, outputs)
            return outputs
        finally:
            _reset(tokens)

    register(cls, "aforward", async_forward)


def _started(adapter: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    call = current_predict.get()
    if call is None:
        return
    signature = kwargs["signature"] if "signature" in kwargs else (args[2] if len(args) > 2 else None)
    if signature is None:
        return
    try:
        call.frame.run.predictor_started(call, adapter, signature)
    except Exception:
        logger.exception("streamll: could not read the predictor's signature")


def _wrap_adapter(cls: type) -> None:
    call, acall = cls.__dict__["__call__"], cls.__dict__.get("acall")

    @functools.wraps(call)
    def sync_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        _started(self, args, kwargs)
        return call(self, *args, **kwargs)

    register(cls, "__call__", sync_call)
    if acall is None:
        return

    @functools.wraps(acall)
    async def async_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        _started(self, args, kwargs)
        return await acall(self, *args, **kwargs)

    register(cls, "acall", async_call)


_Entered = tuple[LMSpan, PredictCall | None, Any, list[Token[Any]]]


def _enter_lm(lm: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Entered | None:
    frame = current_frame()
    if frame is None:
        return None
    call = current_predict.get()
    tokens = adopt(frame) if call is None else []
    try:
        span = LMSpan(frame.run, call, str(getattr(lm, "model", type(lm).__name__)))
    except Exception:
        logger.exception("streamll: could not open an LM span")
        _reset(tokens)
        return None
    previous = None
    if call is not None:
        previous, call.lm = call.lm, span
    span.status_provider = provider = status.provider_for(frame.module)
    if provider is not None:
        status.report(provider, "lm_start", lm, _lm_inputs(args, kwargs), module_name=span.model)
    return span, call, previous, tokens


def _lm_inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The LM call's arguments by name (``prompt``, ``messages``, the keyword ones), as DSPy's callbacks see them."""
    inputs = dict(zip(("prompt", "messages"), args, strict=False))
    inputs.update(kwargs)
    return inputs


def _exit_lm(
    entered: tuple[LMSpan, PredictCall | None, Any, list[Token[Any]]], lm: Any, outputs: Any, exc: Any
) -> None:
    span, call, previous, tokens = entered
    if call is not None:
        call.lm = previous
    try:
        span.finish(lm, outputs, exc)
    except Exception:
        logger.exception("streamll: could not close an LM span")
    if exc is None:
        status.report(span.status_provider, "lm_end", outputs, module_name=span.model)
    _reset(tokens)


def _wrap_lm(cls: type) -> None:
    call, acall = cls.__dict__["__call__"], cls.__dict__.get("acall")

    @functools.wraps(call)
    def sync_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        entered = _enter_lm(self, args, kwargs)
        if entered is None:
            return call(self, *args, **kwargs)
        try:
            outputs = call(self, *args, **kwargs)
        except BaseException as exc:
            _exit_lm(entered, self, None, exc)
            raise
        _exit_lm(entered, self, outputs, None)
        return outputs

    register(cls, "__call__", sync_call)
    if acall is None:
        return

    @functools.wraps(acall)
    async def async_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        entered = _enter_lm(self, args, kwargs)
        if entered is None:
            return await acall(self, *args, **kwargs)
        try:
            outputs = await acall(self, *args, **kwargs)
        except BaseException as exc:
            _exit_lm(entered, self, None, exc)
            raise
        _exit_lm(entered, self, outputs, None)
        return outputs

    register(cls, "acall", async_call)


def prepare_hooks() -> None:
    """Build the wrappers of Predict, the base Adapter, BaseLM and the tool entry points (once, under the lock)."""
    from dspy.adapters.base import Adapter
    from dspy.clients.base_lm import BaseLM
    from dspy.predict.predict import Predict

    _wrap_predict(Predict)
    _wrap_adapter(Adapter)
    _wrap_lm(BaseLM)
    prepare_tools()


__all__ = ["prepare_hooks"]
