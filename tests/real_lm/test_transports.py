"""One roundtrip per transport: the real model's tokens through Redis, NATS and Kafka and back.

Also the consumer example of docs/token-streaming.md, run as written against Redis.
"""

from __future__ import annotations

import ast
import asyncio
from typing import Any

import dspy
import pytest
import streamll
from streamll.consumer import from_url
from streamll.plugins import create_sink
from streamll.testing.contract import read

from tests.instrument.test_spec_examples import block_with
from tests.kafka.conftest import create_topic, kafka_url, unique
from tests.nats.conftest import delete_stream
from tests.redis.conftest import with_query


@streamll.instrument(stream_fields=["answer"])
class QA(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.predict(question=question)


async def transport_url(request: pytest.FixtureRequest, transport: str) -> str:
    """A URL no other test writes to, on the suite's broker for ``transport``."""
    if transport == "redis":
        return with_query(request.getfixturevalue("redis_url"), stream=request.getfixturevalue("stream_key"))
    if transport == "nats":
        subject, stream = request.getfixturevalue("names")
        return f"{request.getfixturevalue('nats_url')}?subject={subject}&stream={stream}"
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    return kafka_url(bootstrap, await create_topic(bootstrap, unique("real-lm")))


async def remove(request: pytest.FixtureRequest, transport: str) -> None:
    if transport == "nats":
        await delete_stream(request.getfixturevalue("nats_url"), request.getfixturevalue("names")[1])


@pytest.mark.parametrize(
    "transport",
    [
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("nats", marks=pytest.mark.nats),
        pytest.param("kafka", marks=pytest.mark.kafka),
    ],
)
async def test_real_tokens_roundtrip(request: pytest.FixtureRequest, real_lm: Any, transport: str) -> None:
    url = await transport_url(request, transport)
    sink = create_sink(url)
    streamll.configure(sinks=[sink])
    try:
        prediction = await asyncio.to_thread(QA(), question="What do bees make?")
        assert await asyncio.to_thread(streamll.flush, 30)
        assert sink.stats.dropped == 0
        async with from_url(url, from_beginning=True) as consumer:
            events = await read(consumer, sink.stats.delivered, timeout=30)
    finally:
        await asyncio.to_thread(streamll.configure, None)
        await asyncio.to_thread(sink.stop)
        await remove(request, transport)
    tokens = [event for event in events if event.event_type == "token"]
    assert len(tokens) > 1
    assert "".join(token.token for token in tokens) == prediction.answer
    assert [token.token_index for token in tokens] == list(range(len(tokens)))
    assert events[0].event_type == "start" and events[-1].event_type == "end"


@pytest.mark.redis
async def test_documented_consumer_prints_the_real_tokens(
    redis_url: str, stream_key: str, real_lm: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    url = with_query(redis_url, stream=stream_key)
    code = block_with("RedisStreamConsumer").replace('"redis://localhost:6379"', repr(url))
    namespace: dict[str, Any] = {}
    example = eval(compile(code, "token-streaming.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT), namespace)
    task = asyncio.ensure_future(example)
    streamll.configure(sinks=[url])
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not (namespace.get("consumer") is not None and namespace["consumer"].is_started):
            assert loop.time() < deadline and not task.done(), "the example's consumer did not start"
            await asyncio.sleep(0.01)
        prediction = await asyncio.to_thread(QA(), question="What colour is grass?")
        assert await asyncio.to_thread(streamll.flush, 30)
        printed: list[str] = []
        while not (printed and "".join(line.split(": ", 1)[1] for line in printed) == prediction.answer):
            assert loop.time() < deadline and not task.done(), f"printed so far: {printed}"
            printed += [line for line in capsys.readouterr().out.splitlines() if line.startswith("Token #")]
            await asyncio.sleep(0.02)
        assert printed[0].startswith("Token #0 for answer: ")
    finally:
        task.cancel()
        await asyncio.to_thread(streamll.configure, None)
        if namespace.get("consumer") is not None:
            await namespace["consumer"].stop()
