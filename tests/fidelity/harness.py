"""The differential harness: run one program plain and instrumented, and describe what it did.

A :class:`Case` is one program of the corpus. :func:`run_variant` runs it against
the offline LM server in a fresh, isolated DSPy cache and returns an
:class:`Outcome`: the normalized result, every LM request the server received,
the raised exception (type, message, ``__context__`` / ``__cause__`` chain and
the user's own traceback frames), and the token events streamll emitted. The
test compares the plain outcome with each instrumented variant's.
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import re
import tempfile
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dspy
import pydantic
import streamll
from streamll import MemorySink, TokenEvent
from streamll.testing import OfflineLMServer

HERE = os.path.dirname(os.path.abspath(__file__))
"""Frames from files in this folder are the "user's code" of the corpus."""

Decorate = Callable[[type], type]
"""What a case applies to its module class: identity (plain) or a ``streamll.instrument`` form."""

STREAM_KEYS = ("stream", "stream_options")
"""Request keys that only say the reply is streamed; a streamed-field variant may set them."""

QUESTION = "What is machine learning?"


def call(program: Any) -> Any:
    """The default way a case calls its program: one sync call with ``QUESTION``."""
    return program(question=QUESTION)


@dataclass(frozen=True)
class Known:
    """A reported, not yet fixed difference: these variants must fail (strict xfail) where it applies."""

    variants: tuple[str, ...]
    reason: str
    applies: Callable[[], bool] = lambda: True


@dataclass(frozen=True)
class Case:
    """One program of the corpus.

    Args:
        id: test id.
        build: ``build(decorate)`` defines the program's ``dspy.Module`` class,
            applies ``decorate`` to it and returns the program to run.
        run: ``run(program)`` returns what the user gets (default: one sync call).
        stream_fields: the fields chosen in the streamed variant.
        knobs: ``OfflineLMServer.configure`` knobs for the run.
        lm: ``server.lm(...)`` options (``num_retries``, ``cache``, ``engine``...).
        adapter: the adapter factory (default ``dspy.ChatAdapter``).
        ordered: whether the order of LM requests is part of the behaviour
            (False for thread pools, whose order is the scheduler's).
        check: a sanity check on the plain outcome, so a case proves the
            behaviour it is about really happened (a fallback made 2 requests...).
        requires: returns a reason to skip on this DSPy version, or None.
        known: reported differences not fixed yet; their variants are strict xfails.
        disk_cache: give the run a (fresh, temporary) disk cache as well as the memory cache.
        cut_body: the server cuts replies mid-body; see :func:`without_cut_detail`.
    """

    id: str
    build: Callable[[Decorate], Any]
    run: Callable[[Any], Any] = call
    stream_fields: tuple[str, ...] = ("answer",)
    knobs: dict[str, Any] = field(default_factory=dict)
    lm: dict[str, Any] = field(default_factory=dict)
    adapter: Callable[[], Any] | None = None
    ordered: bool = True
    check: Callable[[Outcome], None] | None = None
    requires: Callable[[], str | None] | None = None
    known: tuple[Known, ...] = ()
    disk_cache: bool = False
    cut_body: bool = False


@dataclass
class Outcome:
    """What one run of a program did, in comparable form."""

    result: Any
    requests: list[dict[str, Any]]
    exception: dict[str, Any] | None
    tokens: list[TokenEvent] = field(default_factory=list)
    raw_result: Any = None
    stream_responses: list[Any] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)
    """``file:function`` of each frame of the raised exception's traceback, streamll's marked ``streamll:``."""
    """The LM's ``history`` (what ``dspy.inspect_history`` shows), without ids and timestamps."""


# ------------------------------------------------------------------ normalization


def normalize(value: Any, depth: int = 0) -> Any:
    """A JSON-like, comparable form of what a program returned."""
    if depth > 12:
        return repr(value)
    if isinstance(value, dspy.Prediction):
        return {"Prediction": {key: normalize(item, depth + 1) for key, item in value.items()}}
    if isinstance(value, dspy.Example):
        return {"Example": {key: normalize(item, depth + 1) for key, item in value.items()}}
    if isinstance(value, pydantic.BaseModel):
        return {type(value).__name__: normalize(value.model_dump(mode="json"), depth + 1)}
    if isinstance(value, enum.Enum):
        return {type(value).__name__: value.value}
    if isinstance(value, dict):
        return {str(key): normalize(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize(item, depth + 1) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    score = getattr(value, "score", None)
    results = getattr(value, "results", None)
    if score is not None and isinstance(results, list):  # dspy.evaluate.EvaluationResult
        return {"EvaluationResult": {"score": score, "results": normalize(results, depth + 1)}}
    return repr(value)


def exception_summary(exc: BaseException | None, depth: int = 0) -> dict[str, Any] | None:
    """Type, message, chained exceptions and the frames of the user's own code."""
    if exc is None or depth > 6:
        return None
    frames = [
        (os.path.basename(frame.filename), frame.name, frame.lineno)
        for frame in traceback.extract_tb(exc.__traceback__)
        if os.path.dirname(os.path.abspath(frame.filename)) == HERE and frame.name != "run_variant"
    ]
    return {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc),
        "cause": exception_summary(exc.__cause__, depth + 1),
        "context": exception_summary(exc.__context__, depth + 1),
        "suppress_context": exc.__suppress_context__,
        "user_frames": frames,
    }


CUT_BODY = "peer closed connection without sending complete message body ("
"""How httpx / httpcore / h11 report a reply cut mid-body; the detail in parentheses names the framing."""
OUTSTANDING = re.compile(r"with \d+ body bytes outstanding")


def without_cut_detail(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """``summary`` without the framing detail of a cut-body transport error (the one tolerated difference).

    A plain call reads a ``Content-Length`` body and httpx reports ``(received N
    bytes, expected M)``; the same request streamed reads a chunked body and
    reports ``(incomplete chunked read)``. lm15 (dspy >= 3.4) reports ``with N body
    bytes outstanding``, where N varies by a byte from run to run (the reply's id
    and timestamp), plain or not. Types, chain and every other message are compared.
    """
    if summary is None:
        return None
    message = OUTSTANDING.sub("with N body bytes outstanding", summary["message"])
    if summary["type"].endswith("RemoteProtocolError") and message.startswith(CUT_BODY):
        message = CUT_BODY + "...)"
    return {
        **summary,
        "message": message,
        "cause": without_cut_detail(summary["cause"]),
        "context": without_cut_detail(summary["context"]),
    }


STREAMLL_DIR = os.path.dirname(os.path.abspath(streamll.__file__))


def frame_names(exc: BaseException | None) -> list[str]:
    """``file:function`` per traceback frame; streamll's own frames start with ``streamll:``."""
    if exc is None:
        return []
    names = []
    for frame in traceback.extract_tb(exc.__traceback__):
        path = os.path.abspath(frame.filename)
        owner = "streamll" if path.startswith(STREAMLL_DIR + os.sep) else os.path.basename(os.path.dirname(path))
        names.append(f"{owner}:{os.path.basename(path)}:{frame.name}")
    return names


def request_key(body: dict[str, Any]) -> str:
    """A stable text form of a request body, for sorting unordered requests."""
    return json.dumps(body, sort_keys=True, default=repr)


def comparable_requests(outcome: Outcome, *, ordered: bool, drop: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The request bodies, without ``drop`` keys, sorted when their order is the scheduler's."""
    bodies = [{key: value for key, value in body.items() if key not in drop} for body in outcome.requests]
    return bodies if ordered else sorted(bodies, key=request_key)


def comparable_history(outcome: Outcome, *, ordered: bool) -> list[dict[str, Any]]:
    """The LM history entries, sorted when their order is the scheduler's."""
    return list(outcome.history) if ordered else sorted(outcome.history, key=request_key)


# ------------------------------------------------------------------ running


def run_variant(case: Case, decorate: Decorate, server: OfflineLMServer, sink: MemorySink) -> Outcome:
    """Run ``case`` once with its class decorated by ``decorate``, in a fresh DSPy cache."""
    server.reset()
    server.configure(**case.knobs)
    sink.events.clear()
    with tempfile.TemporaryDirectory(prefix="streamll-fidelity-cache-") as cache_dir:
        # A fresh cache per run, never the user's: memory only unless the case is about the disk cache
        # (creating DSPy's sharded disk cache costs about a second).
        dspy.configure_cache(enable_disk_cache=case.disk_cache, enable_memory_cache=True, disk_cache_dir=cache_dir)
        lm = server.lm(**case.lm)
        adapter = case.adapter() if case.adapter is not None else dspy.ChatAdapter()
        result: Any = None
        error: BaseException | None = None
        with dspy.context(lm=lm, adapter=adapter):
            program = case.build(decorate)
            try:
                result = case.run(program)
            except Exception as exc:
                error = exc
        assert streamll.flush(10), "streamll did not deliver its events within 10 s"
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True, disk_cache_dir=cache_dir)
    stream_responses: list[Any] = []
    if isinstance(result, StreamedRun):
        stream_responses, result = result.responses, result.final
    return Outcome(
        result=normalize(result),
        requests=list(server.requests),
        exception=exception_summary(error),
        tokens=sink.tokens(),
        raw_result=result,
        stream_responses=stream_responses,
        history=[history_entry(entry) for entry in lm.history],
        frames=frame_names(error),
    )


HISTORY_KEYS = ("prompt", "messages", "kwargs", "outputs", "usage", "cost", "model", "response_model", "model_type")
"""The parts of an LM history entry that are the same from run to run (not uuid, timestamp, response ids)."""


def history_entry(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: normalize(entry.get(key)) for key in HISTORY_KEYS if key in entry}


@dataclass
class StreamedRun:
    """What ``dspy.streamify`` yielded: the user's ``StreamResponse`` items and the final prediction."""

    responses: list[Any]
    final: Any


def run_async(coroutine_factory: Callable[[], Any]) -> Any:
    """Run a coroutine on a fresh event loop, as a script's ``asyncio.run(main())`` does."""
    return asyncio.run(coroutine_factory())


# ------------------------------------------------------------------ tokens


def streamed_texts(tokens: list[TokenEvent]) -> dict[str, list[str]]:
    """Per field, the text of each LM span's complete stream of that field (joined tokens)."""
    spans: dict[tuple[str, str | None], list[TokenEvent]] = {}
    for event in sorted(tokens, key=lambda e: (e.execution_id, e.sequence)):
        spans.setdefault((event.field, f"{event.execution_id}/{event.parent_id}"), []).append(event)
    texts: dict[str, list[str]] = {}
    for (name, _span), events in spans.items():
        runs: list[list[TokenEvent]] = []
        for event in events:  # one span can hold several streams of a field (a replay after a retry)
            if event.token_index == 0 or not runs:
                runs.append([])
            runs[-1].append(event)
        for run in runs:
            texts.setdefault(name, []).append("".join(e.token for e in run))
    return texts


def predictions_in(value: Any) -> list[dspy.Prediction]:
    """Every prediction in what a program returned (one, a list, an evaluation's results)."""
    if isinstance(value, dspy.Prediction):
        return [value]
    if isinstance(value, (list, tuple)):
        return [p for item in value for p in predictions_in(item)]
    results = getattr(value, "results", None)
    if isinstance(results, list):
        return predictions_in(results)
    return []


# ------------------------------------------------------------------ reporting


def first_difference(actual: Any, expected: Any, path: str = "") -> str | None:
    """Where two normalized values first differ, e.g. ``[0]['stream']: True != <missing>``; None if equal."""
    if isinstance(actual, dict) and isinstance(expected, dict):
        for key in [*expected, *(k for k in actual if k not in expected)]:
            if key not in actual or key not in expected:
                got = repr(actual.get(key, "<missing>"))[:200]
                want = repr(expected.get(key, "<missing>"))[:200]
                return f"{path}[{key!r}]: {got} != {want}"
            found = first_difference(actual[key], expected[key], f"{path}[{key!r}]")
            if found:
                return found
        return None
    if isinstance(actual, list) and isinstance(expected, list):
        for index, (got, want) in enumerate(zip(actual, expected, strict=False)):
            found = first_difference(got, want, f"{path}[{index}]")
            if found:
                return found
        if len(actual) != len(expected):
            return f"{path}: {len(actual)} items != {len(expected)} items"
        return None
    if actual != expected:
        return f"{path}: {repr(actual)[:300]} != {repr(expected)[:300]}"
    return None


def assert_same(what: str, actual: Any, expected: Any) -> None:
    """Fail with the first difference between the instrumented (left) and plain (right) values."""
    difference = first_difference(actual, expected)
    assert difference is None, f"{what} differ (instrumented != plain) at {difference}"
