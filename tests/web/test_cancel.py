"""Cancellation travels from the relay (or streamll.cancel) through the broker to the producing process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import streamll
from streamll_nats import NatsSink
from streamll_redis import RedisSink

from tests.redis.conftest import wait_until
from tests.web.support import Producer, RelayProcess, read_sse


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
