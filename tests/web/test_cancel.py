"""Cancellation travels from the relay (or streamll.cancel) through the broker to the producing process."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import dspy
import httpx
import pytest
import streamll
from streamll.testing import OfflineLMServer
from streamll_nats import NatsSink
from streamll_redis import RedisSink

from tests.helpers import wait_until
from tests.web.support import Producer, ReasoningQA, RelayProcess, read_sse, streamed_text


def post_cancel_until_heard(relay: RelayProcess, execution_id: str, timeout: float = 20.0) -> httpx.Response:
    """The producer subscribes in the background once its run starts: retry until it answers 202."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.post(f"{relay.base}/executions/{execution_id}/cancel")
        if response.status_code == 202 or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


@pytest.fixture
def redis_sink(redis_source: str) -> Iterator[RedisSink]:
    sink = RedisSink(redis_source)
    yield sink
    sink.stop(timeout=5)


@pytest.fixture
def nats_sink(nats_source: str) -> Iterator[NatsSink]:
    sink = NatsSink(nats_source)
    yield sink
    sink.stop(timeout=5)


@pytest.mark.redis
def test_cancel_reaches_the_producer_through_redis(
    redis_relay: RelayProcess, redis_source: str, redis_sink: RedisSink, slow_lm_server: Any, slow_lm: Any
) -> None:
    slow_lm_server.token_delay = 0.1
    producer = Producer(redis_sink, slow_lm).start()
    assert not producer.run.cancelled
    answered = post_cancel_until_heard(redis_relay, producer.execution_id)
    assert answered.status_code == 202, answered.text
    assert wait_until(lambda: producer.run.cancelled, timeout=10)
    producer.join()
    events = [
        frame.json() for frame in read_sse(f"{redis_relay.base}/executions/{producer.execution_id}/events").frames
    ]
    assert events[-1]["event_type"] == "end" and events[-1]["data"]["cancelled"] is True
    # after the run ended nobody listens for it any more
    assert wait_until(lambda: not streamll.cancel(producer.execution_id, redis_source), timeout=10)
    assert httpx.post(f"{redis_relay.base}/executions/{producer.execution_id}/cancel").status_code == 404


@pytest.mark.redis
def test_cancel_stops_the_lm_call_mid_stream(
    redis_relay: RelayProcess, redis_sink: RedisSink, slow_lm_server: Any, slow_lm: Any
) -> None:
    slow_lm_server.token_delay = 0.1  # the reply takes several seconds to stream
    producer = Producer(redis_sink, slow_lm).start()
    url = f"{redis_relay.base}/executions/{producer.execution_id}/events"
    read_sse(url, stop_when=lambda r: any(frame.json()["event_type"] == "token" for frame in r.frames))
    assert post_cancel_until_heard(redis_relay, producer.execution_id).status_code == 202
    assert producer.join() is None, "the run ends without a prediction"

    # the LM stream was closed: the server stopped writing long before the reply's end
    assert len(slow_lm_server.requests) == 1, "no retry, no adapter fallback call"
    assert wait_until(lambda: slow_lm_server.streams and slow_lm_server.streams[0].ended, timeout=10)
    stream = slow_lm_server.streams[0]
    assert stream.client_closed and not stream.finished
    assert stream.sent < stream.pieces // 2, f"sent {stream.sent} of {stream.pieces} pieces"

    events = [frame.json() for frame in read_sse(url).frames]
    tokens = [e for e in events if e["event_type"] == "token"]
    assert tokens and tokens[-1]["data"]["finish_reason"] == "cancelled"
    assert [t["data"]["finish_reason"] for t in tokens[:-1]].count("cancelled") == 0
    lm_ends = [e for e in events if e["operation"] == "lm" and e["event_type"] in ("end", "error")]
    assert len(lm_ends) == 1 and lm_ends[0]["data"]["finish_reason"] == "cancelled"
    streamed = streamed_text(events, "reasoning") + streamed_text(events, "answer")
    assert 0 < len(streamed) < len(tokens) * 20
    assert events[-1]["event_type"] == "end" and events[-1]["data"]["cancelled"] is True


def test_a_cancelled_run_ends_normally_marked_cancelled(memory_sink: Any) -> None:
    from streamll.core.runs import raise_if_cancelled

    with streamll.execution() as run:
        raise_if_cancelled()  # not cancelled: nothing happens
        run.cancel()
        raise_if_cancelled()  # where the LM stream is read: stops the call
        pytest.fail("raise_if_cancelled did not stop the run")
    assert memory_sink.flush(5)
    end = memory_sink.events[-1]
    assert end.event_type == "end" and end.parent_id is None and end.data["cancelled"] is True
    with pytest.raises(streamll.ExecutionCancelled), streamll.execution():
        raise streamll.ExecutionCancelled("another run's cancellation is not swallowed")


@pytest.mark.redis
def test_a_client_disconnect_never_cancels(redis_relay: RelayProcess, redis_sink: RedisSink, slow_lm: Any) -> None:
    producer = Producer(redis_sink, slow_lm).start()
    read_sse(f"{redis_relay.base}/executions/{producer.execution_id}/events", stop_after=3)  # then drops
    prediction = producer.join()
    assert not producer.run.cancelled and prediction.answer


@pytest.mark.nats
def test_cancel_reaches_the_producer_through_nats(
    nats_relay: RelayProcess, nats_source: str, nats_sink: NatsSink, slow_lm_server: Any, slow_lm: Any
) -> None:
    slow_lm_server.token_delay = 0.1
    producer = Producer(nats_sink, slow_lm).start()
    assert wait_until(lambda: streamll.cancel(producer.execution_id, nats_source), timeout=20)
    assert wait_until(lambda: producer.run.cancelled, timeout=10)
    producer.join()
    assert httpx.post(f"{nats_relay.base}/executions/{producer.execution_id}/cancel").status_code == 404


@streamll.instrument(stream_fields=["reasoning", "answer"])
class AsyncReasoningQA(dspy.Module):
    """ChainOfThought with an ``aforward``, for ``acall``."""

    def __init__(self) -> None:
        super().__init__()
        self.cot = dspy.ChainOfThought("question -> answer")

    async def aforward(self, question: str) -> dspy.Prediction:
        return await self.cot.acall(question=question)


@pytest.mark.parametrize("engine", [None, "litellm"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_run_cancel_closes_the_lm_stream(memory_sink: Any, engine: str | None, mode: str) -> None:
    """Without the relay: ``run.cancel()`` from another thread while tokens arrive stops the LM call."""
    with OfflineLMServer(token_delay=0.05) as server:
        lm = server.lm(**({"engine": engine} if engine else {}))
        prediction: list[Any] = []

        def program() -> None:
            with dspy.context(lm=lm, adapter=dspy.ChatAdapter()), streamll.execution() as run:
                threading.Thread(target=cancel_at_first_token, args=(run,), daemon=True).start()
                if mode == "sync":
                    prediction.append(ReasoningQA()(question="What is machine learning?"))
                else:
                    prediction.append(asyncio.run(AsyncReasoningQA().acall(question="What is machine learning?")))

        def cancel_at_first_token(run: streamll.ExecutionRun) -> None:
            wait_until(lambda: any(e.event_type == "token" for e in list(memory_sink.events)), timeout=20)
            run.cancel()

        program()
        assert prediction == [], "the instrumented call was stopped"
        assert len(server.requests) == 1, "no retry, no adapter fallback call"
        assert wait_until(lambda: server.streams and server.streams[0].ended, timeout=10)
        stream = server.streams[0]
        assert stream.client_closed and not stream.finished
        assert stream.sent < stream.pieces // 2, f"sent {stream.sent} of {stream.pieces} pieces"
    assert memory_sink.flush(5)
    events = list(memory_sink.events)
    tokens = [e for e in events if e.event_type == "token"]
    assert tokens and tokens[-1].finish_reason == "cancelled"
    assert all(t.finish_reason != "cancelled" for t in tokens[:-1])
    lm_ends = [e for e in events if e.operation == "lm" and e.event_type in ("end", "error")]
    assert [e.event_type for e in lm_ends] == ["end"] and lm_ends[0].data["finish_reason"] == "cancelled"
    # a cancelled module is not a failed one: its span ends "cancelled", as the LM call and the run do
    module_ends = [e for e in events if e.operation == "module" and e.event_type in ("end", "error")]
    assert module_ends and all(e.event_type == "end" and e.data["cancelled"] is True for e in module_ends)
    assert events[-1].event_type == "end" and events[-1].parent_id is None and events[-1].data["cancelled"] is True


def test_an_uncancelled_run_streams_the_whole_reply(memory_sink: Any) -> None:
    with OfflineLMServer() as server, dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
        with streamll.execution() as run:
            prediction = ReasoningQA()(question="What is machine learning?")
        assert prediction.answer and not run.cancelled
        assert server.streams[0].finished and server.streams[0].sent == server.streams[0].pieces
