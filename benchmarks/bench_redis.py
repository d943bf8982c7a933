"""Sustained throughput of RedisSink against a raw ``redis.asyncio`` pipeline writing the same entries.

    python benchmarks/bench_redis.py [--url redis://127.0.0.1:6379/0] [--events 50000] [--rounds 3]

sink: events/s from the first ``enqueue`` until ``flush()`` returns (encoding,
buffering, batching and the pipelined XADDs on the background worker).
raw:  events/s of the same XADD entries (bodies encoded beforehand), written
in pipelines of the sink's batch size with ``transaction=False``.
The best of ``--rounds`` runs of each is reported, with sink / raw.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

import redis
import redis.asyncio as aioredis
from streamll.core.context import Execution
from streamll.core.emitter import make_event
from streamll.core.events import Event, TokenEvent
from streamll_redis import RedisSink
from streamll_redis.entries import entry_fields


def make_events(count: int) -> list[Event]:
    """Token events of one execution, like a long streamed answer."""
    execution = Execution()
    return [
        make_event(
            "token", execution=execution, cls=TokenEvent, token=f" word{index}", token_index=index, field="answer"
        )[0]
        for index in range(count)
    ]


async def raw_round(url: str, stream: str, entries: list[dict[str, bytes | str]], batch: int, maxlen: int) -> float:
    """Seconds for redis.asyncio to write ``entries`` in pipelines of ``batch``."""
    client = aioredis.Redis.from_url(url)
    await client.ping()
    started = time.perf_counter()
    for start in range(0, len(entries), batch):
        pipe = client.pipeline(transaction=False)
        for fields in entries[start : start + batch]:
            pipe.xadd(stream, fields, maxlen=maxlen, approximate=True)
        await pipe.execute()
    elapsed = time.perf_counter() - started
    await client.aclose()
    return elapsed


def sink_round(url: str, stream: str, events: list[Event]) -> float:
    """Seconds from the first enqueue until flush() returns."""
    sink = RedisSink(url, stream=stream, overflow="block", block_timeout=60)
    sink.start()
    assert sink.flush(10)  # connected and idle before timing
    started = time.perf_counter()
    for event in events:
        sink.enqueue(event)
    assert sink.flush(120), sink.stats
    elapsed = time.perf_counter() - started
    stats = sink.stats
    sink.stop()
    if stats.delivered != len(events) or stats.dropped:
        raise SystemExit(f"sink lost events: {stats}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("STREAMLL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    events = make_events(args.events)
    batch = RedisSink.batch_size
    maxlen = RedisSink(args.url).maxlen
    entries = [entry_fields(event) for event in events]
    body_bytes = sum(len(fields["data"]) for fields in entries) / len(entries)
    check = redis.Redis.from_url(args.url)
    prefix = f"streamll-bench:{uuid.uuid4().hex[:8]}"

    raw_times: list[float] = []
    sink_times: list[float] = []
    try:
        for round_number in range(args.rounds):
            raw_key, sink_key = f"{prefix}:raw:{round_number}", f"{prefix}:sink:{round_number}"
            raw_times.append(asyncio.run(raw_round(args.url, raw_key, entries, batch, maxlen)))
            sink_times.append(sink_round(args.url, sink_key, events))
            assert check.xlen(raw_key) == check.xlen(sink_key) == min(len(events), check.xlen(raw_key))
            check.delete(raw_key, sink_key)
    finally:
        for key in check.scan_iter(f"{prefix}:*"):
            check.delete(key)
        check.close()

    raw_rate = len(events) / min(raw_times)
    sink_rate = len(events) / min(sink_times)
    print(f"redis: {len(events)} events, ~{body_bytes:.0f} B bodies, batches of {batch}, best of {args.rounds}")
    print(f"  raw redis.asyncio pipeline: {raw_rate:>10,.0f} events/s")
    print(f"  RedisSink (enqueue..flush): {sink_rate:>10,.0f} events/s")
    print(f"  ratio sink/raw:             {sink_rate / raw_rate:>10.2f}")


if __name__ == "__main__":
    main()
