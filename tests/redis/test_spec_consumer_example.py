"""The consumer example of docs/token-streaming.md, run verbatim against Redis."""

from __future__ import annotations

import ast
import asyncio
import re
from pathlib import Path
from typing import Any

import dspy
import pytest
import streamll

from tests.helpers import async_wait_until
from tests.redis.conftest import with_query

pytestmark = pytest.mark.redis

DOC = Path(__file__).resolve().parents[2] / "docs" / "token-streaming.md"
DOC_URL = "redis://localhost:6379"


def consumer_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    (block,) = [b for b in blocks if "RedisStreamConsumer" in b]
    return block


async def test_documented_consumer_prints_the_streamed_tokens(
    redis_url: str, stream_key: str, redis_client: Any, lm_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code = consumer_example()
    assert DOC_URL in code
    # The example's code as written, pointed at a stream of this test's own (the redis_client fixture deletes it),
    # so neither other tests nor other runs on the same server read or leave events in the default stream.
    sink_url = with_query(redis_url, stream=stream_key)
    code = code.replace(DOC_URL, sink_url)
    namespace: dict[str, Any] = {}
    example = eval(compile(code, str(DOC), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT), namespace)
    task = asyncio.ensure_future(example)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10

        def consumer_started() -> bool:
            assert not task.done(), "the example ended before its consumer started"
            return namespace.get("consumer") is not None and namespace["consumer"].is_started

        await async_wait_until(consumer_started, 10, what="the example's consumer to start")

        @streamll.instrument(stream_fields=["answer"], sinks=[sink_url])
        class SimpleQA(dspy.Module):
            def __init__(self) -> None:
                super().__init__()
                self.predict = dspy.Predict("question -> answer")

            def forward(self, question: str) -> dspy.Prediction:
                return self.predict(question=question)

        namespace["SimpleQA"] = SimpleQA
        lm_server.reset()
        with dspy.context(lm=lm_server.lm(), adapter=dspy.ChatAdapter()):
            prediction = await asyncio.to_thread(SimpleQA(), question="What is machine learning?")
        words = prediction.answer.split(" ")
        expected = [f"Token #0 for answer: {words[0]}"] + [
            f"Token #{index} for answer:  {word}" for index, word in enumerate(words[1:], start=1)
        ]
        printed: list[str] = []
        while not all(line in printed for line in expected):
            assert loop.time() < deadline + 10 and not task.done(), f"printed so far: {printed}"
            printed += capsys.readouterr().out.splitlines()
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        consumer = namespace.get("consumer")
        if consumer is not None:
            await consumer.stop()
        for sink in getattr(namespace.get("SimpleQA"), "_streamll_sinks", None) or ():
            await asyncio.to_thread(sink.stop)
