"""``@streamll.instrument``: turn a ``dspy.Module`` subclass into a source of events.

Each top-level call of an instrumented module is one execution: a module
``start`` event, an LM ``start`` / ``end`` pair per LM request, a token event
per piece of every chosen output field, and a module ``end`` event (or
``error``, after which the user's exception propagates unchanged).

The call itself runs as it would without streamll, in the caller's thread or
task: streamll puts a frame in ``dspy.settings`` (it follows DSPy into the
threads it starts), learns what DSPy does from thin wrappers on ``Predict``,
the base ``Adapter`` and ``BaseLM`` (:mod:`streamll.streaming.hooks`), and captures tokens below DSPy
(:mod:`streamll.streaming.capture`): only the LM requests of predictors with a
chosen field stream, and DSPy receives their assembled replies as ordinary calls.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar, overload

import dspy

from streamll.config import resolve_sinks
from streamll.core.context import context_tags
from streamll.core.spans import Span
from streamll.streaming import capture, status
from streamll.streaming.bridge import TokenRun
from streamll.streaming.frames import FRAME_KEY, Frame, FrameRun, adopt, current_frame, frame_of, hide_frames
from streamll.streaming.names import check_entry

logger = logging.getLogger("streamll")

M = TypeVar("M", bound=type)
T = TypeVar("T")

ORIGINAL_ATTR = "__streamll_original__"
FIELDS_ATTR = "_streamll_stream_fields"


def _check_stream_fields(stream_fields: Iterable[str] | None) -> tuple[str, ...]:
    if stream_fields is None:
        return ()
    if isinstance(stream_fields, str):
        raise TypeError(f"stream_fields must be a list of field names, e.g. [{stream_fields!r}], not a string")
    fields = tuple(stream_fields)
    for name in fields:
        if not isinstance(name, str) or not name:
            raise TypeError(f"stream_fields must contain field names (non-empty strings), got {name!r}")
        check_entry(name)
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


def _check_status_messages(provider: Any) -> None:
    if provider is None or isinstance(provider, bool):
        return
    if not callable(getattr(provider, "tool_start_status_message", None)):
        raise TypeError(
            "status_messages must be True, False or a dspy.streaming.StatusMessageProvider, "
            f"not {type(provider).__name__}"
        )


class _StreamFields:
    """``_streamll_stream_fields`` on an instrumented class: per call while a call runs.

    Read or set inside ``forward`` it is the running call's own choice (held in
    that call's frame), so concurrent calls on one instance never mix. Set
    outside a call it is the instance's default, stored in its ``__dict__`` (so
    instances pickle and copy like plain ones).
    """

    def __init__(self, default: tuple[str, ...]) -> None:
        self.default = default

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self.default
        frame = frame_of(obj)
        if frame is not None:
            return frame.fields
        return obj.__dict__.get(FIELDS_ATTR, self.default)

    def __set__(self, obj: Any, value: Any) -> None:
        frame = frame_of(obj)
        if frame is not None:
            frame.fields = value
        else:
            obj.__dict__[FIELDS_ATTR] = value

    def __delete__(self, obj: Any) -> None:
        obj.__dict__.pop(FIELDS_ATTR, None)


class _Call:
    """One call of an instrumented module: its span, frame and DSPy context."""

    def __init__(self, module: Any, method_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.module = module
        self.parent = current_frame()
        self.span = Span(
            "module",
            type(module).__name__,
            method_name=method_name,
            sinks=_class_sinks(type(module)),
            data=_io_data(module, "inputs", lambda: _inputs(args, kwargs)),
        )
        self._inputs = kwargs
        self._adopted: list[contextvars.Token[Any]] = []
        self._dspy_context: Any = None
        self._run: TokenRun | None = None
        self.result: Any = None
        """What the module returned (reported in the end event)."""

    def __enter__(self) -> _Call:
        fields = self.module._streamll_stream_fields
        if self.parent is not None:
            self._adopted = adopt(self.parent)
        self.span.open()
        run: FrameRun
        if self.parent is None:
            assert self.span.execution is not None
            run = self._run = TokenRun(self.span.execution)
        else:
            run = self.parent.run
        frame = Frame(self.module, fields, run, self.parent, self.span.span_id, dict(context_tags.get()))
        self._dspy_context = dspy.context(**{FRAME_KEY: frame})
        self._dspy_context.__enter__()
        status.report(status.provider_for(self.module), "module_start", self.module, self._inputs)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._dspy_context.__exit__(None, None, None)
        if exc is None:
            status.report(status.provider_for(self.module), "module_end", self.result)
        try:
            outputs = None if exc is not None else _io_data(self.module, "outputs", lambda: _summary(self.result))
            self.span.close(exc, outputs)
        except Exception:  # reporting must never replace the user's result or exception
            logger.exception("streamll: could not emit the end event of %s", type(self.module).__name__)
        for token in reversed(self._adopted):
            token.var.reset(token)
        if self._run is not None and (unmatched := self._run.unmatched_fields()):
            _warn_unmatched(type(self.module), unmatched, self._run)


_warned: set[tuple[type, frozenset[str]]] = set()


def _warn_unmatched(cls: type, unmatched: set[str], run: TokenRun) -> None:
    """Say once per class when chosen stream fields match no output field (a typo streams nothing)."""
    key = (cls, frozenset(unmatched))
    if key in _warned:
        return
    _warned.add(key)
    available = sorted(run.outputs_seen)
    if any("." in name for name in unmatched):
        available += sorted(run.paths_seen)
    warnings.warn(
        f"{cls.__name__}: stream_fields {sorted(unmatched)} match no output field of its predictors "
        f"(available: {available}); nothing is streamed for them",
        UserWarning,
        stacklevel=_caller_stacklevel(),
    )


def _caller_stacklevel() -> int:
    """The ``stacklevel`` pointing at the first frame outside streamll and DSPy (the user's call)."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not (name == "streamll" or name.startswith(("streamll.", "dspy.", "asyncio.", "contextlib"))):
            return level
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return 2


def call_sync(original: Callable[..., Any], module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """One sync call of an instrumented module."""
    with capture.capturing(), _Call(module, "forward", args, kwargs) as tracked:
        tracked.result = original(module, *args, **kwargs)
        return tracked.result


async def call_async(original: Callable[..., Any], module: Any, args: Any, kwargs: Any) -> Any:
    """One ``acall`` of an instrumented module (DSPy's own ``acall``: it awaits ``aforward``)."""
    with capture.capturing(), _Call(module, "aforward", args, kwargs) as tracked:
        tracked.result = await original(module, *args, **kwargs)
        return tracked.result


def _sync_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call_sync(original, self, args, kwargs)
        except BaseException as exc:
            hide_frames(exc)
            raise

    setattr(__call__, ORIGINAL_ATTR, original)
    return __call__


def _async_wrapper(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def acall(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await call_async(original, self, args, kwargs)
        except BaseException as exc:
            hide_frames(exc)
            raise

    setattr(acall, ORIGINAL_ATTR, original)
    return acall


_sinks_by_class: dict[str, tuple[Any, ...]] = {}
"""Sinks given to ``@instrument(sinks=...)``, by a key stored on the class (sink objects do not pickle)."""


class _SinksOf:
    """``cls._streamll_sinks``: the sinks given to ``@instrument(sinks=...)`` (or ``None``)."""

    def __get__(self, obj: Any, owner: type | None = None) -> tuple[Any, ...] | None:
        return _class_sinks(owner if owner is not None else type(obj))


def _class_sinks(cls: type) -> tuple[Any, ...] | None:
    key = getattr(cls, "_streamll_sinks_key", None)
    return _sinks_by_class.get(key) if key is not None else None


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
    status_messages: Any = True,
) -> Callable[[M], M]: ...


def instrument(
    cls: M | None = None,
    /,
    *,
    stream_fields: Sequence[str] | None = None,
    sinks: Sequence[Any] | None = None,
    include_inputs: bool = True,
    include_outputs: bool = True,
    status_messages: Any = True,
) -> M | Callable[[M], M]:
    """Class decorator for ``dspy.Module`` subclasses.

    Args:
        stream_fields: output field names whose text is streamed as token
            events (e.g. ``["reasoning", "answer"]``: those fields of every
            predictor), or predictor-qualified names (``"respond.answer"``:
            the field of the predictor at that attribute path, as
            ``named_predictors()`` names it). Fields not listed produce
            no token events. ``self._streamll_stream_fields`` set inside
            ``forward`` overrides it for that call.
        sinks: sinks (objects or URLs) for this module's events instead of the
            configured ones.
        include_inputs: put the call's arguments in the module ``start``
            event's ``data["inputs"]`` (turn off for prompts with personal data).
        include_outputs: put the result in the module ``end`` event's
            ``data["outputs"]``. Token events are chosen by ``stream_fields``;
            ``configure(redact=...)`` scrubs or drops any event before it leaves.
        status_messages: ``status`` events, worded by a DSPy
            ``StatusMessageProvider``: ``True`` uses DSPy's default one (tool
            calls only, as ``dspy.streamify``), a provider instance its own
            texts, ``False`` none.

    Usable bare (``@streamll.instrument``: lifecycle events, no token
    streaming unless chosen dynamically) or with arguments.
    """
    fields = _check_stream_fields(stream_fields)
    resolved = resolve_sinks(sinks)[0] if sinks is not None else None
    _check_status_messages(status_messages)

    def decorate(target: M) -> M:
        return _decorate(target, fields, resolved, include_inputs, include_outputs, status_messages)

    if cls is not None:
        return decorate(cls)
    return decorate


def _decorate(
    target: M,
    fields: tuple[str, ...],
    resolved: Any,
    include_inputs: bool,
    include_outputs: bool,
    status_messages: Any,
) -> M:
    """Wrap ``target``'s ``__call__`` and ``acall`` and store the options ``instrument`` checked on the class."""
    if not (isinstance(target, type) and issubclass(target, dspy.Module)):
        raise TypeError(
            f"@streamll.instrument decorates dspy.Module subclasses, not {target!r}; "
            "define `class MyModule(dspy.Module)` and decorate the class"
        )
    module_class: Any = target
    call = getattr(module_class.__call__, ORIGINAL_ATTR, module_class.__call__)
    acall = getattr(module_class.acall, ORIGINAL_ATTR, module_class.acall)
    module_class._streamll_stream_fields = _StreamFields(fields)
    key = None
    if resolved is not None:
        key = f"{target.__module__}.{target.__qualname__}:{id(target)}"
        _sinks_by_class[key] = resolved
    module_class._streamll_sinks_key = key
    module_class._streamll_sinks = _SinksOf()
    module_class._streamll_include_inputs = bool(include_inputs)
    module_class._streamll_include_outputs = bool(include_outputs)
    module_class._streamll_status_messages = status_messages if status_messages is not None else False
    module_class.__call__ = _sync_wrapper(call)
    module_class.acall = _async_wrapper(acall)
    module_class._streamll_instrumented = True
    return target


__all__ = ["instrument"]
