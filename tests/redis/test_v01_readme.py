"""streamll 0.1.1's README, as published, runs against this code unchanged except its LM line.

The five examples (quick start, production Redis, consumer, custom events,
correlation) are read from the 0.1.1 wheel's metadata and run in order in one
namespace, as a reader would paste them; only the line configuring the LM
points at the offline server. The test adds calls the README leaves to the
reader (calling ``RAGPipeline``) and observers (a memory sink, one more
handler), never edits the examples.
"""

from __future__ import annotations

import ast
import asyncio
import concurrent.futures
import contextlib
import json
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import dspy
import pytest
import redis
import streamll
from streamll.sinks.memory import MemorySink
from streamll.testing import OfflineLMServer

from tests.compat.v01_support import readme
from tests.helpers import url_reachable, wait_until

pytestmark = pytest.mark.redis

README_URL = "redis://localhost:6379"
LM_LINE = 'dspy.configure(lm=dspy.LM("openai/gpt-4o-mini"))'


def examples() -> dict[str, str]:
    blocks = re.findall(r"```python\n(.*?)```", readme(), flags=re.DOTALL)
    names = ["quick start", "production", "consumer", "custom events", "correlation"]
    assert len(blocks) == len(names), blocks
    return dict(zip(names, blocks, strict=True))


def wait(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    wait_until(predicate, timeout, what=what)


@pytest.fixture
def readme_redis(redis_url: str) -> Iterator[str]:
    """The README's Redis URL if it answers (else the test server's); the README's stream is emptied around the test."""
    url = README_URL if url_reachable(README_URL, 6379) else redis_url
    client = redis.Redis.from_url(url)
    client.delete("ml_events")
    yield url
    client.delete("ml_events")
    client.close()


def test_the_0_1_1_readme_examples_run_unchanged(
    lm_server: OfflineLMServer, readme_redis: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lm_server.reset()
    code = examples()
    assert code["quick start"].count(LM_LINE) == 1
    offline = f'dspy.configure(lm=dspy.LM("openai/offline", api_base="{lm_server.api_base}", api_key="x", cache=False))'
    code["quick start"] = code["quick start"].replace(LM_LINE, offline)
    if readme_redis != README_URL:
        for name in ("production", "consumer"):
            code[name] = code[name].replace(README_URL, readme_redis)
    namespace: dict[str, Any] = {}
    loop_ready = threading.Event()
    consumer_error: list[BaseException] = []

    def run_consumer_example() -> None:
        example = eval(
            compile(code["consumer"], "README consumer", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT), namespace
        )

        async def main() -> None:
            namespace["__loop__"] = asyncio.get_running_loop()
            loop_ready.set()
            await example  # `await consumer.run()`: until the consumer is stopped

        try:
            asyncio.run(main())
        except BaseException as exc:
            consumer_error.append(exc)

    try:
        # Quick start: tokens of the answer on the terminal
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            exec(compile(code["quick start"], "README quick start", "exec"), namespace)
        assert streamll.flush(timeout=10)
        answer = namespace["result"].answer
        printed = capsys.readouterr().out
        tokens = re.findall(r'^\[TOKEN\] answer: (".*")$', printed, flags=re.MULTILINE)
        streamed = "".join(json.loads(token) for token in tokens)
        assert streamed == answer

        # Production use: defines a Redis sink (0.1's name and signature) and a QA streaming to it
        with pytest.warns(DeprecationWarning, match="from streamll_redis import RedisSink"):
            exec(compile(code["production"], "README production", "exec"), namespace)

        # Consumer: runs until stopped, printing each token
        thread = threading.Thread(target=run_consumer_example, daemon=True)
        thread.start()
        wait(lambda: consumer_error or ("consumer" in namespace and namespace["consumer"].is_started), "the consumer")
        assert not consumer_error, consumer_error
        consumer = namespace["consumer"]
        contexts: list[Any] = []
        consumer.on("token")(lambda event: contexts.append(event.data.get("conversation_id")))  # an observer

        # Custom events: the README defines RAGPipeline; calling it is left to the reader
        memory = MemorySink(name="readme-custom-events")
        with streamll.configure(sinks=[memory]):
            exec(compile(code["custom events"], "README custom events", "exec"), namespace)
            pipeline = namespace["RAGPipeline"]()
            pipeline.retrieve = lambda question: ["doc one", "doc two"]
            pipeline.generate = dspy.Predict("docs, question -> answer")
            pipeline(question="What is DSPy?")
            assert streamll.flush(timeout=10)
        (found,) = memory.of_type("docs_found")
        assert found.data == {"count": 2}
        retrieval_start = next(e for e in memory.events if e.event_type == "start" and e.module_name == "retrieval")
        assert found.parent_id == retrieval_start.event_id

        # Correlation: ids set once are on every event, readable where 0.1 consumers read them
        exec(compile(code["correlation"], "README correlation", "exec"), namespace)
        correlated = namespace["result"].answer
        output: list[str] = []

        def consumer_output() -> str:
            output.append(capsys.readouterr().out)
            return "".join(output)

        wait(lambda: correlated in consumer_output(), "the consumer to print the streamed answer")
        assert contexts and set(contexts) == {"conv_123"}
        assert consumer.stats.handler_errors == 0
    finally:
        consumer = namespace.get("consumer")
        loop = namespace.get("__loop__")
        if consumer is not None and loop is not None:
            stopping = asyncio.run_coroutine_threadsafe(consumer.stop(), loop)
            with contextlib.suppress(concurrent.futures.CancelledError, RuntimeError):  # run() may end first
                stopping.result(10)
        streamll.set_context(conversation_id=None, request_id=None)
        for sink in getattr(namespace.get("QA"), "_streamll_sinks", None) or ():
            sink.stop(5)
        dspy.configure(lm=None)
