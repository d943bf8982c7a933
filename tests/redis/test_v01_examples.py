"""What streamll 0.1.1's examples/ scripts do, against this code.

The scripts themselves are not in the published distributions; these tests
make the same calls in the same order (names, signatures, context managers,
event fields they read) with the LM pointed at the offline server:

* quickstart.py: bare ``@streamll.instrument`` and ``stream_fields=["answer"]``,
  each call inside ``with streamll.configure():`` (terminal output).
* production_redis.py: ``from streamll.sinks import RedisSink``,
  ``RedisSink(redis_url=..., stream_key="streamll:events")``, a ``query -> response``
  module streaming ``response``, three calls inside ``with streamll.configure(sinks=[redis_sink]):``.
* consumer_demo.py: ``from streamll.event_consumer import EventConsumer``,
  ``from streamll.models import Event``, ``EventConsumer(broker_url=..., target=...)``,
  async handlers for start / token / end / error reading ``event.data.get("token")``,
  ``event.data.get("duration", 0)`` and ``event.execution_id``, then
  ``await consumer.start()``, ``await consumer.app.run()``, ``await consumer.stop()``.
"""

from __future__ import annotations

import asyncio
import json
import re
import warnings
from collections.abc import Iterator

import dspy
import pytest
import redis.asyncio as aioredis
import streamll
from streamll.testing import OfflineLMServer

pytestmark = pytest.mark.redis


@pytest.fixture
def server(lm_server: OfflineLMServer) -> Iterator[OfflineLMServer]:
    lm_server.reset()
    with dspy.context(lm=lm_server.lm(), adapter=dspy.ChatAdapter()):
        yield lm_server
    lm_server.reset()


def test_quickstart(server: OfflineLMServer, capsys: pytest.CaptureFixture[str]) -> None:
    @streamll.instrument
    class BasicQA(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("question -> answer")

        def forward(self, question: str) -> dspy.Prediction:
            return self.predict(question=question)

    @streamll.instrument(stream_fields=["answer"])
    class StreamingQA(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("question -> answer")

        def forward(self, question: str) -> dspy.Prediction:
            return self.predict(question=question)

    with streamll.configure():  # the terminal default
        basic = BasicQA()("What is the capital of France?")
    with streamll.configure():
        streamed = StreamingQA()("Write a haiku about programming")
    assert streamll.flush(timeout=10)
    output = capsys.readouterr().out
    assert basic.answer and "[START] module BasicQA" in output and "[END] module BasicQA" in output
    tokens = re.findall(r'^\[TOKEN\] answer: (".*")$', output, flags=re.MULTILINE)
    assert "".join(json.loads(token) for token in tokens) == streamed.answer


async def test_production_redis_then_consumer_demo(
    server: OfflineLMServer, redis_url: str, stream_key: str, redis_client: aioredis.Redis
) -> None:
    # the example's key is "streamll:events"; a key of the test's own (deleted afterwards) keeps runs apart
    printed: list[str] = []

    # consumer_demo.py, started first (it reads what arrives after it starts)
    from streamll.event_consumer import EventConsumer

    with pytest.warns(DeprecationWarning):
        from streamll.models import Event

    consumer = EventConsumer(broker_url=redis_url, target=stream_key)

    module_durations: list[float] = []

    @consumer.on("start")
    async def handle_start(event: Event) -> None:
        printed.append(f"START: {event.operation} (ID: {event.execution_id})")

    @consumer.on("token")
    async def handle_token(event: Event) -> None:
        printed.append(event.data.get("token", ""))

    @consumer.on("end")
    async def handle_end(event: Event) -> None:
        duration = event.data.get("duration", 0)
        if event.operation == "module":
            module_durations.append(duration)
        printed.append(f"\nEND: {event.operation} ({duration:.2f}s)\n")

    @consumer.on("error")
    async def handle_error(event: Event) -> None:
        printed.append(f"ERROR: {event.data.get('error_message', 'Unknown error')}\n")

    await consumer.start()
    with pytest.warns(DeprecationWarning, match="await consumer.run"):
        app = consumer.app
    running = asyncio.create_task(app.run())

    # production_redis.py
    def produce() -> list[str]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from streamll.sinks import RedisSink

        @streamll.instrument(stream_fields=["response"])
        class AssistantModule(dspy.Module):
            def __init__(self) -> None:
                super().__init__()
                self.predict = dspy.Predict("query -> response")

            def forward(self, query: str) -> dspy.Prediction:
                return self.predict(query=query)

        redis_sink = RedisSink(redis_url=redis_url, stream_key=stream_key)
        assistant = AssistantModule()
        answers = []
        with streamll.configure(sinks=[redis_sink]):
            for query in ["Explain quantum computing", "What's the future of AI?", "How do neural networks work?"]:
                answers.append(assistant(query=query).response)
        assert redis_sink.flush(20)
        redis_sink.stop(5)
        return answers

    try:
        answers = await asyncio.to_thread(produce)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while "".join(printed).count("END: module") < 3:
            assert loop.time() < deadline and not running.done(), printed
            await asyncio.sleep(0.02)
    finally:
        await consumer.stop()
        await asyncio.wait_for(running, 10)
    text = "".join(printed)
    for answer in answers:
        assert answer in text
    assert text.count("START: module") == 3 and consumer.stats.handler_errors == 0
    assert len(re.findall(r"END: module \([0-9]+\.[0-9]{2}s\)", text)) == 3
    # 0.1's data["duration"], in seconds (a fast call can print as 0.00s, so the value itself is checked)
    assert len(module_durations) == 3 and all(seconds > 0 for seconds in module_durations)
    entries = await redis_client.xread({stream_key: "0"}, count=10)  # the script's redis-cli hint
    assert entries and len(entries[0][1]) == 10
