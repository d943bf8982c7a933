"""``@streamll.instrument``: turn a ``dspy.Module`` subclass into a source of events.

Each top-level call of an instrumented module is one execution: a module
``start`` event, an LM ``start`` / ``end`` pair per LM call, a token event per
chunk of every chosen output field, and a module ``end`` event (or ``error``,
after which the user's exception propagates unchanged).

How tokens are captured: the call runs with DSPy's stream channel
(``settings.send_stream``) set to a :class:`~streamll.streaming.bridge.TokenChannel`.
DSPy's sync path sends chunks with ``anyio.from_thread.run``, so a sync call
runs ``forward`` in an AnyIO worker thread under a short-lived event loop (on a
helper thread when the caller already runs a loop); ``acall`` streams on the
caller's loop with no thread at all when the module has ``aforward``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar, overload

import anyio
import dspy

from streamll.config import resolve_sinks
from streamll.core.spans import Span
from streamll.streaming.bridge import RunCallback, TokenChannel, TokenRun, instrumented_module

logger = logging.getLogger("streamll")

M = TypeVar("M", bound=type)
T = TypeVar("T")

active_run: ContextVar[TokenRun | None] = ContextVar("streamll_active_run", default=None)
"""The run of the enclosing instrumented call; nested instrumented modules join it."""

ORIGINAL_ATTR = "__streamll_original__"


def _check_stream_fields(stream_fields: Iterable[str] | None) -> tuple[str, ...]:
    if stream_fields is None:
        return ()
    if isinstance(stream_fields, str):
        raise TypeError(f"stream_fields must be a list of field names, e.g. [{stream_fields!r}], not a string")
    fields = tuple(stream_fields)
    for name in fields:
        if not isinstance(name, str) or not name:
            raise TypeError(f"stream_fields must contain field names (non-empty strings), got {name!r}")
    return fields


def _summary(value: Any) -> Any:
    """A prediction or inputs as plain data for the start / end events."""
    if isinstance(value, dspy.Prediction):
        try:
            return dict(value.items())
        except Exception:
            return repr(value)
    return value


def _io_data(module: Any, key: str, value: Callable[[], Any]) -> dict[str, Any] | None:
    """``{key: value()}`` for a start / end event, or None when ``include_inputs`` / ``include_outputs`` is off."""
    if not getattr(type(module), f"_streamll_include_{key}", True):
        return None
    return {key: value()}


def _inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = dict(kwargs)
    if args:
        data["args"] = list(args)
    return data


class _Call:
    """One call of an instrumented module: its span, run and DSPy context."""

    def __init__(self, module: Any, method_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.module = module
        self.nested = active_run.get() is not None
        self.span = Span(
            "module",
            type(module).__name__,
            method_name=method_name,
            sinks=getattr(type(module), "_streamll_sinks", None),
            data=_io_data(module, "inputs", lambda: _inputs(args, kwargs)),
        )
        self._tokens: list[contextvars.Token[Any]] = []
        self._dspy_context: Any = None
        self._run: TokenRun | None = None
        self.result: Any = None
        """What the module returned (reported in the end event)."""

    def __enter__(self) -> _Call:
        self.span.open()
        self._tokens.append(instrumented_module.set(self.module))
        if not self.nested:
            assert self.span.execution is not None
            run = self._run = TokenRun(self.span.execution)
            self._tokens.append(active_run.set(run))
            callbacks = [*dspy.settings.get("callbacks", []), RunCallback(run)]
            self._dspy_context = dspy.context(send_stream=TokenChannel(run), callbacks=callbacks)
            self._dspy_context.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._dspy_context is not None:
            self._dspy_context.__exit__(exc_type, exc, tb)
        for token in reversed(self._tokens):
            token.var.reset(token)
        try:
            outputs = None if exc is not None else _io_data(self.module, "outputs", lambda: _summary(self.result))
            self.span.close(exc, outputs)
        except Exception:  # reporting must never replace the user's result or exception
            logger.exception("streamll: could not emit the end event of %s", type(self.module).__name__)
        if self._run is not None and (unmatched := self._run.unmatched_fields()):
            _warn_unmatched(type(self.module), unmatched, self._run.outputs_seen)


_warned: set[tuple[type, frozenset[str]]] = set()


def _warn_unmatched(cls: type, unmatched: set[str], available: set[str]) -> None:
    """Say once per class when chosen stream fields match no output field (a typo streams nothing)."""
    key = (cls, frozenset(unmatched))
    if key in _warned:
        return
    _warned.add(key)
    warnings.warn(
        f"{cls.__name__}: stream_fields {sorted(unmatched)} match no output field of its predictors "
        f"(available: {sorted(available)}); nothing is streamed for them",
        UserWarning,
        stacklevel=4,
    )


def _run_with_stream_loop(fn: Callable[[], T]) -> T:
    """Run ``fn`` in an AnyIO worker thread while a loop serves its ``from_thread`` calls."""
    context = contextvars.copy_context()

    async def main() -> T:
        return await anyio.to_thread.run_sync(context.run, fn)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return anyio.run(main)
    outcome: dict[str, Any] = {}

    def helper() -> None:
        try:
            outcome["value"] = anyio.run(main)
        except BaseException as exc:  # re-raised unchanged in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=helper, name="streamll-call", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]


def _sync_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
        def call() -> Any:
            with _Call(self, "forward", args, kwargs) as tracked:
                tracked.result = original(self, *args, **kwargs)
                return tracked.result

        if active_run.get() is not None:
            return call()
        return _run_with_stream_loop(call)

    setattr(__call__, ORIGINAL_ATTR, original)
    return __call__


def _async_wrapper(original: Callable[..., Any], original_sync: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def acall(self: Any, *args: Any, **kwargs: Any) -> Any:
        has_aforward = callable(getattr(type(self), "aforward", None))
        with _Call(self, "aforward" if has_aforward else "forward", args, kwargs) as tracked:
            if has_aforward:
                tracked.result = await original(self, *args, **kwargs)
            else:
                tracked.result = await anyio.to_thread.run_sync(functools.partial(original_sync, self, *args, **kwargs))
            return tracked.result

    setattr(acall, ORIGINAL_ATTR, original)
    return acall


@overload
def instrument(cls: M, /) -> M: ...


@overload
def instrument(
    cls: None = None,
    /,
    *,
    stream_fields: Sequence[str] | None = None,
    sinks: Sequence[Any] | None = None,
    include_inputs: bool = True,
    include_outputs: bool = True,
) -> Callable[[M], M]: ...


def instrument(
    cls: M | None = None,
    /,
    *,
    stream_fields: Sequence[str] | None = None,
    sinks: Sequence[Any] | None = None,
    include_inputs: bool = True,
    include_outputs: bool = True,
) -> M | Callable[[M], M]:
    """Class decorator for ``dspy.Module`` subclasses.

    Args:
        stream_fields: output field names whose text is streamed as token
            events (e.g. ``["reasoning", "answer"]``). Fields not listed produce
            no token events. ``self._streamll_stream_fields`` set inside
            ``forward`` overrides it for that call.
        sinks: sinks (objects or URLs) for this module's events instead of the
            configured ones.
        include_inputs: put the call's arguments in the module ``start``
            event's ``data["inputs"]`` (turn off for prompts with personal data).
        include_outputs: put the result in the module ``end`` event's
            ``data["outputs"]``. Token events are chosen by ``stream_fields``;
            ``configure(redact=...)`` scrubs or drops any event before it leaves.

    Usable bare (``@streamll.instrument``: lifecycle events, no token
    streaming unless chosen dynamically) or with arguments.
    """
    fields = _check_stream_fields(stream_fields)
    resolved = resolve_sinks(sinks)[0] if sinks is not None else None

    def decorate(target: M) -> M:
        if not (isinstance(target, type) and issubclass(target, dspy.Module)):
            raise TypeError(
                f"@streamll.instrument decorates dspy.Module subclasses, not {target!r}; "
                "define `class MyModule(dspy.Module)` and decorate the class"
            )
        module_class: Any = target
        call = getattr(module_class.__call__, ORIGINAL_ATTR, module_class.__call__)
        acall = getattr(module_class.acall, ORIGINAL_ATTR, module_class.acall)
        module_class._streamll_stream_fields = fields
        module_class._streamll_sinks = resolved
        module_class._streamll_include_inputs = bool(include_inputs)
        module_class._streamll_include_outputs = bool(include_outputs)
        module_class.__call__ = _sync_wrapper(call)
        module_class.acall = _async_wrapper(acall, call)
        module_class._streamll_instrumented = True
        return target

    if cls is not None:
        return decorate(cls)
    return decorate


__all__ = ["instrument"]
