"""Token access: HMAC, expiring, bound to one execution; enforced by a relay process started with a secret."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from streamll.web import ANY_EXECUTION, sign, verify
from streamll_redis import RedisSink

from tests.web.support import Producer, RelayProcess, read_sse

SECRET = "s3cret-for-tests"


def test_a_token_reads_only_its_execution_until_it_expires() -> None:
    token = sign("exec-a", SECRET, ttl=60, now=1_000)
    assert verify(token, "exec-a", SECRET, now=1_059)
    assert not verify(token, "exec-b", SECRET, now=1_000), "bound to one execution"
    assert not verify(token, "exec-a", SECRET, now=1_061), "expired"
    assert not verify(token, "exec-a", "another-secret", now=1_000)
    expiry, signature = token.split(".")
    assert not verify(f"{int(expiry) + 3600}.{signature}", "exec-a", SECRET, now=1_000), "expiry is signed"
    assert not verify(None, "exec-a", SECRET) and not verify("garbage", "exec-a", SECRET)
    assert verify(sign(ANY_EXECUTION, SECRET, ttl=60), "exec-z", SECRET)
    with pytest.raises(ValueError, match="ttl"):
        sign("exec-a", SECRET, ttl=0)
    with pytest.raises(ValueError, match="secret"):
        sign("exec-a", "")


@pytest.fixture
def sink(redis_source: str) -> Iterator[RedisSink]:
    sink = RedisSink(redis_source)
    yield sink
    sink.stop(timeout=5)


@pytest.mark.redis
def test_the_relay_refuses_wrong_expired_and_other_executions_tokens(
    redis_source: str, sink: RedisSink, slow_lm: Any, relays: Callable[..., RelayProcess]
) -> None:
    relay = relays(redis_source, secret=SECRET)
    producer = Producer(sink, slow_lm).start()
    producer.join()
    url = f"{relay.base}/executions/{producer.execution_id}/events"

    assert httpx.get(url).status_code == 403
    assert httpx.get(url, params={"token": sign(producer.execution_id, "wrong-secret")}).status_code == 403
    assert httpx.get(url, params={"token": sign("another-execution", SECRET)}).status_code == 403
    expired = sign(producer.execution_id, SECRET, ttl=1, now=time.time() - 10)
    refused = httpx.get(url, params={"token": expired})
    assert refused.status_code == 403 and "token" in refused.json()["error"]
    cancel = f"{relay.base}/executions/{producer.execution_id}/cancel"
    assert httpx.post(cancel, params={"token": sign("another-execution", SECRET)}).status_code == 403
    assert (
        httpx.get(relay.base + "/executions", params={"token": sign(producer.execution_id, SECRET)}).status_code == 403
    )

    good = read_sse(f"{url}?token={sign(producer.execution_id, SECRET, ttl=30)}", timeout=20)
    assert good.status == 200 and good.ended and good.frames[-1].json()["event_type"] == "end"
    listed = httpx.get(relay.base + "/executions", params={"token": sign(ANY_EXECUTION, SECRET)})
    assert listed.status_code == 200
