"""Tool calls inside an instrumented run: thin wrappers on DSPy's tool entry points.

* ``Tool.__call__`` / ``Tool.acall``: every ``dspy.Tool`` call (ReAct's, or the user's own);
* ``ToolCalls.ToolCall.execute``: native function calling's tool calls;
* ``ReAct.forward`` / ``aforward``: the iteration (``step``) of ReAct's predictor calls
  and of the tools they choose.

Each tool call becomes a :class:`~streamll.core.tools.ToolSpan` (``tool_start``,
then ``tool_end`` or ``tool_error``). The wrappers never change what the program
sees: arguments, results and exceptions pass through untouched, and a raised
exception leaves without the wrapper's frame in its traceback (ReAct puts the
traceback of a failed tool into the next prompt, so an extra frame would change
the LM request).
"""

from __future__ import annotations

import functools
import logging
import sys
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

from streamll.core.context import context_tags, current_execution, current_span
from streamll.core.tools import ToolSpan
from streamll.streaming import status
from streamll.streaming.frames import adopt, current_frame
from streamll.streaming.patches import register

logger = logging.getLogger("streamll")


@dataclass
class ReactState:
    """One running ReAct call: its predictor, the current iteration and the LM call that chose the tool."""

    predictor: Any
    step: int = -1
    lm_call_id: str | None = None
    called: bool = False
    """The step's tool was called (a tool that tool calls gets an id of its own)."""


def react_call_id(lm_call_id: str) -> str:
    """The ``tool_call_id`` of a ReAct step's tool: ``call_`` + the ``event_id`` of the LM call that chose it.

    The step's ``next_tool_args`` tokens have that LM call as their ``parent_id``,
    so a consumer can put the streamed arguments and the tool call together.
    """
    return f"call_{lm_call_id}"


current_react: ContextVar[ReactState | None] = ContextVar("streamll_react", default=None)
_executing: ContextVar[str | None] = ContextVar("streamll_executing_tool", default=None)
"""Name of the tool a ``ToolCall.execute`` is running here (a ``dspy.Tool`` it calls is the same call)."""


# ---------------------------------------------------------------------------- entering and leaving a tool


class _Entered:
    """An open tool span, the context tokens to reset when it closes, and the run's status provider."""

    __slots__ = ("provider", "span", "tokens")

    def __init__(self, span: ToolSpan, tokens: list[Token[Any]], provider: Any) -> None:
        self.span = span
        self.tokens = tokens
        self.provider = provider


def _enter(instance: Any, name: str, arguments: dict[str, Any], call_id: str | None) -> _Entered | None:
    """Open a tool span when an instrumented run is active here (None otherwise; never raises)."""
    frame = current_frame()
    if frame is None:
        return None
    tokens = adopt(frame)
    try:
        extra: dict[str, Any] = {}
        react = current_react.get()
        if react is not None and react.step >= 0:
            extra["step"] = react.step
            if react.lm_call_id is not None:
                extra["lm_call_id"] = react.lm_call_id
                if not react.called:  # the step's own tool: its id names the LM call that chose it
                    call_id = call_id or react_call_id(react.lm_call_id)
            react.called = True
        match = frame.run.chosen_tools.claim(call_id, name, arguments)
        if match is not None:
            call_id = call_id or match.tool_call_id
            extra["lm_call_id"] = match.lm_call_id
        provider = status.provider_for(frame.module)
        text = None if name == "finish" else status.message(provider, "tool_start", instance, arguments)
        span = ToolSpan(
            name,
            arguments,
            tool_call_id=call_id,
            extra=extra,
            execution=current_execution.get(),
            parent_id=current_span.get(),
            tags=dict(context_tags.get()),
        ).open(text)
    except Exception:
        logger.exception("streamll: could not open a tool span")
        _reset(tokens)
        return None
    return _Entered(span, tokens, provider)


def _exit(entered: _Entered, result: Any, error: BaseException | None) -> None:
    try:
        text = None
        # ReAct's finish tool ("Completed."), as DSPy's status callback skips it; compared as a string only: a
        # result such as a DataFrame compares elementwise and has no truth value
        if error is None and not (type(result) is str and result == "Completed."):
            text = status.message(entered.provider, "tool_end", result)
        entered.span.close(result, error, text)
    except Exception:
        logger.exception("streamll: could not close a tool span")
    finally:
        _reset(entered.tokens)


def _reset(tokens: list[Token[Any]]) -> None:
    for token in reversed(tokens):
        token.var.reset(token)


def _drop_own_frame(exc: BaseException, frame: Any) -> None:
    """Take the wrapper's own frame off the traceback, so a bare ``raise`` leaves the plain program's."""
    tb = exc.__traceback__
    if tb is not None and tb.tb_frame is frame:
        exc.__traceback__ = tb.tb_next


def _nested_same_tool(name: str) -> bool:
    """``execute`` already opened a span for this very tool (it calls a ``dspy.Tool`` it was given)."""
    return _executing.get() == name


# ---------------------------------------------------------------------------- dspy.Tool


def _wrap_tool(cls: type) -> None:
    call, acall = cls.__dict__["__call__"], cls.__dict__.get("acall")

    @functools.wraps(call)
    def sync_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = str(getattr(self, "name", None) or type(self).__name__)
        entered = None if _nested_same_tool(name) else _enter(self, name, dict(kwargs), None)
        if entered is None:
            return call(self, *args, **kwargs)
        try:
            result = call(self, *args, **kwargs)
        except BaseException as exc:
            _exit(entered, None, exc)
            _drop_own_frame(exc, sys._getframe())
            raise
        _exit(entered, result, None)
        return result

    register(cls, "__call__", sync_call)
    if acall is None:
        return

    @functools.wraps(acall)
    async def async_call(self: Any, *args: Any, **kwargs: Any) -> Any:
        name = str(getattr(self, "name", None) or type(self).__name__)
        entered = None if _nested_same_tool(name) else _enter(self, name, dict(kwargs), None)
        if entered is None:
            return await acall(self, *args, **kwargs)
        try:
            result = await acall(self, *args, **kwargs)
        except BaseException as exc:
            _exit(entered, None, exc)
            _drop_own_frame(exc, sys._getframe())
            raise
        _exit(entered, result, None)
        return result

    register(cls, "acall", async_call)


# ---------------------------------------------------------------------------- ToolCalls.ToolCall.execute


def _lookup(name: str, caller: Any) -> dict[str, Any]:
    """What ``execute(functions=None)`` finds in its caller's frame, as the dict DSPy would search."""
    func = caller.f_locals.get(name) or caller.f_globals.get(name)
    return {name: func} if func is not None else {}


def _wrap_execute(cls: type) -> None:
    execute = cls.__dict__.get("execute")
    if execute is None:
        return

    @functools.wraps(execute)
    def sync_execute(self: Any, functions: Any = None, *args: Any, **kwargs: Any) -> Any:
        name = str(getattr(self, "name", ""))
        arguments = getattr(self, "args", None)
        arguments = dict(arguments) if isinstance(arguments, dict) else {}
        entered = _enter(self, name, arguments, getattr(self, "id", None) or None)
        if entered is None:
            return execute(self, functions, *args, **kwargs)
        if functions is None:  # DSPy looks in its caller's frame: that must still be the user's
            functions = _lookup(name, sys._getframe(1))
        executing = _executing.set(name)
        try:
            result = execute(self, functions, *args, **kwargs)
        except BaseException as exc:
            _executing.reset(executing)
            _exit(entered, None, exc)
            _drop_own_frame(exc, sys._getframe())
            raise
        _executing.reset(executing)
        _exit(entered, result, None)
        return result

    register(cls, "execute", sync_execute)


# ---------------------------------------------------------------------------- ReAct iterations


def _wrap_react(cls: type) -> None:
    forward, aforward = cls.__dict__["forward"], cls.__dict__.get("aforward")

    @functools.wraps(forward)
    def sync_forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        if current_frame() is None:
            return forward(self, *args, **kwargs)
        token = current_react.set(ReactState(getattr(self, "react", None)))
        try:
            return forward(self, *args, **kwargs)
        finally:
            current_react.reset(token)

    register(cls, "forward", sync_forward)
    if aforward is None:
        return

    @functools.wraps(aforward)
    async def async_forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        if current_frame() is None:
            return await aforward(self, *args, **kwargs)
        token = current_react.set(ReactState(getattr(self, "react", None)))
        try:
            return await aforward(self, *args, **kwargs)
        finally:
            current_react.reset(token)

    register(cls, "aforward", async_forward)


def react_step(predict: Any) -> ReactState | None:
    """When ``predict`` is the running ReAct's predictor, start its next iteration and return the state."""
    state = current_react.get()
    if state is None or state.predictor is not predict:
        return None
    state.step += 1
    state.lm_call_id = None
    state.called = False
    return state


def prepare_tools() -> None:
    """Build the wrappers of ``dspy.Tool``, ``ToolCalls.ToolCall`` and ``dspy.ReAct`` (once)."""
    from dspy.adapters.types.tool import Tool, ToolCalls
    from dspy.predict.react import ReAct

    _wrap_tool(Tool)
    _wrap_execute(ToolCalls.ToolCall)
    _wrap_react(ReAct)


__all__ = ["ReactState", "current_react", "prepare_tools", "react_call_id", "react_step"]
