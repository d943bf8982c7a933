"""The relay on Redis, with real uvicorn processes: order, resume, replicas, joining late, headers, heartbeats."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis
from streamll_redis import RedisSink
from streamll_redis.executions import execution_key, index_key
from streamll_redis.url import parse_redis_url

from tests.web.support import Producer, RelayProcess, read_sse, streamed_text

pytestmark = pytest.mark.redis


def events_url(relay: RelayProcess, execution_id: str, query: str = "") -> str:
    return f"{relay.base}/executions/{execution_id}/events{query}"


def sequences(frames: list[Any]) -> list[int]:
    return [frame.json()["sequence"] for frame in frames]


@pytest.fixture
def sink(redis_source: str) -> Any:
    sink = RedisSink(redis_source)
    yield sink
    sink.stop(timeout=5)


def test_live_stream_is_the_whole_execution_in_order_and_ends(
    redis_relay: RelayProcess, sink: RedisSink, slow_lm: Any
) -> None:
    relay = redis_relay
    producer = Producer(sink, slow_lm)
    producer.start()
    result = read_sse(events_url(relay, producer.execution_id))
    prediction = producer.join()

    assert result.ended, "the stream must end after the execution's last event"
    assert result.headers["content-type"].startswith("text/event-stream")
    assert result.headers["cache-control"] == "no-cache"
    assert result.headers["x-accel-buffering"] == "no"
    events = [frame.json() for frame in result.frames]
    assert [int(frame.id) for frame in result.frames] == [event["sequence"] for event in events]
    assert sequences(result.frames) == list(range(len(events))), "every event once, in order, no gap"
    assert {event["execution_id"] for event in events} == {producer.execution_id}
    assert events[0]["event_type"] == "start" and events[0]["operation"] == "execution"
    assert events[-1]["event_type"] == "end" and events[-1]["parent_id"] is None
    assert streamed_text(events, "answer") == prediction.answer
    assert streamed_text(events, "reasoning") == prediction.reasoning


def test_resume_after_a_dropped_connection_has_no_gap_and_no_duplicate(
    redis_relay: RelayProcess, sink: RedisSink, slow_lm: Any
) -> None:
    relay = redis_relay
    producer = Producer(sink, slow_lm).start()
    url = events_url(relay, producer.execution_id)
    first = read_sse(url, stop_after=15)
    assert not first.ended and len(first.frames) == 15
    last_id = first.frames[-1].id
    assert last_id is not None
    second = read_sse(url, headers={"Last-Event-ID": last_id}, stop_after=10)
    third = read_sse(url + f"?after={second.frames[-1].id}")
    prediction = producer.join()

    assert third.ended
    frames = first.frames + second.frames + third.frames
    assert sequences(frames) == list(range(len(frames)))
    events = [frame.json() for frame in frames]
    assert events[-1]["event_type"] == "end" and events[-1]["parent_id"] is None
    assert streamed_text(events, "answer") == prediction.answer


def test_resume_on_a_second_replica(
    redis_source: str, redis_relay: RelayProcess, sink: RedisSink, slow_lm: Any, relays: Callable[..., RelayProcess]
) -> None:
    first_relay, second_relay = relays(redis_source), redis_relay
    producer = Producer(sink, slow_lm).start()
    first = read_sse(events_url(first_relay, producer.execution_id), stop_after=12)
    first_relay.stop()  # the replica the browser used is gone
    rest = read_sse(events_url(second_relay, producer.execution_id), headers={"Last-Event-ID": first.frames[-1].id})
    prediction = producer.join()

    frames = first.frames + rest.frames
    assert rest.ended
    assert sequences(frames) == list(range(len(frames)))
    assert streamed_text([frame.json() for frame in frames], "answer") == prediction.answer


def test_join_after_completion_gets_all_of_it(redis_relay: RelayProcess, sink: RedisSink, slow_lm: Any) -> None:
    producer = Producer(sink, slow_lm).start()
    prediction = producer.join()
    relay = redis_relay

    result = read_sse(events_url(relay, producer.execution_id), timeout=20)
    assert result.ended
    events = [frame.json() for frame in result.frames]
    assert sequences(result.frames) == list(range(len(events)))
    assert streamed_text(events, "answer") == prediction.answer
    late = read_sse(events_url(relay, producer.execution_id, f"?after={len(events) - 3}"), timeout=20)
    assert sequences(late.frames) == [len(events) - 2, len(events) - 1] and late.ended


def test_heartbeats_keep_an_idle_stream_open(redis_relay: RelayProcess) -> None:
    relay = redis_relay  # heartbeat every 0.5 s
    # nothing is produced for this id yet: the connection stays open, with heartbeat comments
    result = read_sse(events_url(relay, "not-started-yet"), stop_when=lambda r: r.comments >= 3, timeout=20)
    assert result.comments >= 3 and not result.frames and not result.ended


def test_per_execution_keys_expire_and_are_listed(
    redis_source: str, redis_relay: RelayProcess, sink: RedisSink, slow_lm: Any
) -> None:
    producer = Producer(sink, slow_lm).start()
    producer.join()
    options = parse_redis_url(redis_source)
    client = redis.Redis.from_url(redis_source.split("?")[0])
    key = execution_key(options.stream, producer.execution_id)
    assert 0 < client.ttl(key) <= 86_400
    assert client.zscore(index_key(options.stream), producer.execution_id) is not None
    in_shared = [
        entry for entry in client.xrange(options.stream) if entry[1][b"execution_id"] == producer.execution_id.encode()
    ]
    assert client.xlen(key) == len(in_shared), "the execution's key holds the same events as the shared stream"
    listed = httpx.get(redis_relay.base + "/executions").json()["executions"]
    assert listed[0]["execution_id"] == producer.execution_id and listed[0]["finished"]
    client.close()


def test_bad_requests_get_one_line_errors(redis_relay: RelayProcess) -> None:
    relay = redis_relay
    assert httpx.get(events_url(relay, "abc", "?after=x")).status_code == 400
    assert httpx.get(events_url(relay, "abc", "?format=xml")).json()["error"].startswith("format must be one of")
    assert httpx.get(events_url(relay, "a.b")).status_code == 400
    assert httpx.get(events_url(relay, "abc%0A")).status_code == 400  # a newline has no place in a key or subject
    assert json.loads(httpx.post(relay.base + "/executions/nobody/cancel").text)["error"].startswith("no running")
