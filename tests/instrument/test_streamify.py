"""``dspy.streamify`` of an instrumented module: DSPy streams the call itself, streamll reads the same chunks."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import dspy
import pytest
import streamll
from streamll import MemorySink
from streamll.testing import OfflineLMServer

from tests.helpers import wait_until

from .test_streaming import BothCoT, assert_field_stream


def run_streamified(program: Any, async_streaming: bool) -> tuple[str, Any]:
    """The user's listener's text for ``answer`` and the final prediction."""
    pieces: list[str] = []
    final: list[Any] = []

    def take(item: Any) -> None:
        if isinstance(item, dspy.streaming.StreamResponse):
            pieces.append(item.chunk)
        elif isinstance(item, dspy.Prediction):
            final.append(item)

    if async_streaming:

        async def consume() -> None:
            async for item in program(question="both streams?"):
                take(item)

        asyncio.run(consume())
    else:
        for item in program(question="both streams?"):
            take(item)
    return "".join(pieces), final[0]


@pytest.mark.parametrize("engine", ["native", "litellm"])
@pytest.mark.parametrize(
    ("async_streaming", "async_program"),
    [(True, False), (False, False), (True, True)],
    ids=["async", "sync", "aforward"],
)
def test_streamify_and_streamll_both_stream_the_reply(
    engine: str, async_streaming: bool, async_program: bool, server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    lm = server.lm(engine="litellm") if engine == "litellm" else server.lm()
    listener = dspy.streaming.StreamListener(signature_field_name="answer")
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        program = dspy.streamify(
            BothCoT(), stream_listeners=[listener], async_streaming=async_streaming, is_async_program=async_program
        )
        listened, final = run_streamified(program, async_streaming)
    assert listened.strip() == final.answer
    assert streamll.flush(10)
    for name, reason in (("reasoning", "field_end"), ("answer", "stop")):
        tokens = memory_sink.tokens(name)
        assert_field_stream(tokens, final[name], reason)
        assert len(tokens) > 3 and {token.data["source"] for token in tokens} == {"stream"}
    assert len(server.requests) == 1


def predictions_of(program: Any, async_streaming: bool) -> list[Any]:
    """The predictions a streamified program yields (none when its call was stopped)."""
    if not async_streaming:
        return [item for item in program(question="both streams?") if isinstance(item, dspy.Prediction)]

    async def consume() -> list[Any]:
        return [item async for item in program(question="both streams?") if isinstance(item, dspy.Prediction)]

    return asyncio.run(consume())


def is_cancellation(exc: BaseException) -> bool:
    """``exc`` is the run's cancellation, alone or grouped (older DSPy's streamify runs the call in a task group)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_cancellation(inner) for inner in exc.exceptions)
    return isinstance(exc, streamll.ExecutionCancelled)


@pytest.mark.parametrize(("async_streaming", "async_program"), [(False, False), (True, True)], ids=["sync", "aforward"])
def test_a_run_cancelled_while_streamify_streams_stops_reading_the_reply(
    async_streaming: bool, async_program: bool, server: OfflineLMServer, memory_sink: MemorySink
) -> None:
    server.configure(token_delay=0.02, answers={"reasoning": " ".join(["step"] * 60), "answer": "never reached"})
    listener = dspy.streaming.StreamListener(signature_field_name="answer")
    finals: list[Any] = []

    def cancel_at_the_third_token(run: streamll.ExecutionRun) -> None:
        wait_until(lambda: len(memory_sink.tokens()) >= 3, timeout=20)
        run.cancel()

    with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()), streamll.execution() as run:
        threading.Thread(target=cancel_at_the_third_token, args=(run,), daemon=True).start()
        program = dspy.streamify(
            BothCoT(), stream_listeners=[listener], async_streaming=async_streaming, is_async_program=async_program
        )
        try:
            finals.extend(predictions_of(program, async_streaming))
        except BaseException as exc:  # older DSPy's async streamify raises it in an exception group
            if not is_cancellation(exc):
                raise
    assert finals == [], "the streamed call was stopped"
    assert run.cancelled and streamll.flush(10)
    tokens = memory_sink.tokens()
    assert {token.field for token in tokens} == {"reasoning"}, "the answer never began"
    assert tokens[-1].finish_reason == "cancelled"
    assert len(server.requests) == 1
