"""Sustained throughput of RedisSink against a raw ``redis.asyncio`` pipeline writing the same entries.

    python benchmarks/bench_redis.py [--url redis://127.0.0.1:6379/0] [--events 50000] [--rounds 3]

sink: events/s from the first ``enqueue`` until ``flush()`` returns (encoding,
buffering, batching and the pipelined XADDs on the background worker).
raw:  events/s of redis.asyncio writing the same events (``json.dumps`` of each
body inside the timed loop) in pipelines of the sink's batch size with
``transaction=False``, one pipeline after the other (its fastest mode on one
connection). Rounds alternate raw / sink; medians with the spread, and sink / raw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from typing import Any

import redis
import redis.asyncio as aioredis
from _common import json_bodies, report, time_sink, token_events
from streamll_redis import RedisSink
from streamll_redis.entries import entry_fields


async def raw_round(url: str, stream: str, bodies: list[dict[str, Any]], batch: int, maxlen: int) -> float:
    """Seconds for redis.asyncio to encode and write ``bodies`` in pipelines of ``batch``."""
    client = aioredis.Redis.from_url(url)
    await client.ping()
    dumps = json.dumps
    started = time.perf_counter()
    for start in range(0, len(bodies), batch):
        pipe = client.pipeline(transaction=False)
        for body in bodies[start : start + batch]:
            fields = {"data": dumps(body), "event_type": body["event_type"], "execution_id": body["execution_id"]}
            pipe.xadd(stream, fields, maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
        await pipe.execute()
    elapsed = time.perf_counter() - started
    await client.aclose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("STREAMLL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    events = token_events(args.events)
    batch = RedisSink.batch_size
    maxlen = RedisSink(args.url).maxlen
    entries = [entry_fields(event) for event in events[:1000]]
    bodies = json_bodies(events)
    body_bytes = sum(len(fields["data"]) for fields in entries) / len(entries)
    check = redis.Redis.from_url(args.url)
    prefix = f"streamll-bench:{uuid.uuid4().hex[:8]}"

    raw_times: list[float] = []
    sink_times: list[float] = []
    try:
        for round_number in range(args.rounds):
            raw_key, sink_key = f"{prefix}:raw:{round_number}", f"{prefix}:sink:{round_number}"
            raw_times.append(asyncio.run(raw_round(args.url, raw_key, bodies, batch, maxlen)))
            sink = RedisSink(args.url, stream=sink_key, overflow="block", block_timeout=60)
            sink_times.append(time_sink(sink, events))
            assert check.xlen(raw_key) == check.xlen(sink_key) == min(len(events), check.xlen(raw_key))
            check.delete(raw_key, sink_key)
    finally:
        for key in check.scan_iter(f"{prefix}:*"):
            check.delete(key)
        check.close()

    report(
        f"redis: {len(events)} events, ~{body_bytes:.0f} B bodies, batches of {batch}, {args.rounds} rounds",
        raw="raw redis.asyncio pipeline",
        raw_rates=[len(events) / seconds for seconds in raw_times],
        sink="RedisSink (enqueue..flush)",
        sink_rates=[len(events) / seconds for seconds in sink_times],
    )


if __name__ == "__main__":
    main()
