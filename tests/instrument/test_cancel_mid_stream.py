"""A run cancelled while its reply streams: the open field's last token and the LM call end "cancelled"."""

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

from .test_streaming import BothCoT


@pytest.mark.parametrize("engine", ["native", "litellm"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_cancel_while_a_field_streams(engine: str, mode: str, server: OfflineLMServer, memory_sink: MemorySink) -> None:
    server.configure(token_delay=0.02, answers={"reasoning": " ".join(["step"] * 60), "answer": "never reached"})
    lm = server.lm(engine="litellm") if engine == "litellm" else server.lm()
    results: list[Any] = []

    def cancel_at_the_third_token(run: streamll.ExecutionRun) -> None:
        wait_until(lambda: len(memory_sink.tokens()) >= 3, timeout=20)
        run.cancel()

    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()), streamll.execution() as run:
        threading.Thread(target=cancel_at_the_third_token, args=(run,), daemon=True).start()
        module = BothCoT()
        results.append(module(question="long") if mode == "sync" else asyncio.run(module.acall(question="long")))
    assert results == [], "the instrumented call was stopped"
    assert run.cancelled
    assert streamll.flush(10)

    tokens = memory_sink.tokens()
    assert {token.field for token in tokens} == {"reasoning"}, "the answer never began"
    assert [token.token_index for token in tokens] == list(range(len(tokens)))
    assert [token.finish_reason for token in tokens] == [None] * (len(tokens) - 1) + ["cancelled"]
    assert "".join(token.token for token in tokens).startswith("step step step")
    lm_ends = [event for event in memory_sink.events if event.operation == "lm" and event.event_type != "start"]
    assert [(event.event_type, event.data["finish_reason"]) for event in lm_ends] == [("end", "cancelled")]
    assert len(server.requests) == 1, "no retry, no adapter fallback"
