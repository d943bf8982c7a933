"""Sustained throughput of NatsSink against raw nats-py ``js.publish_async`` of the same messages.

    python benchmarks/bench_nats.py [--url nats://127.0.0.1:4222] [--events 30000] [--rounds 3]

sink: events/s from the first ``enqueue`` until ``flush()`` returns (encoding,
headers, buffering, batching and JetStream-acknowledged publishes on the
background worker; overflow ``block`` so no event is dropped).
raw:  events/s of ``JetStreamContext.publish_async`` for the same events
(``json.dumps`` of each body inside the timed loop, with the same headers),
every publish in flight at once and all acks awaited at the end (its fastest
mode), on one connection.
Each side writes to a fresh file-storage stream of its own; rounds alternate
raw / sink; medians with the spread, and sink / raw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid

import nats
from _common import json_bodies, report, time_sink, token_events
from nats.js.errors import NotFoundError
from streamll_nats import NatsSink, message_headers

DEFAULT_URL = os.environ.get("STREAMLL_BENCH_NATS_URL", "nats://127.0.0.1:4222")


def bench_sink(url: str, events: list, batch_size: int) -> float:  # type: ignore[type-arg]
    """Events/s through a NatsSink (connection and stream set up before the clock starts)."""
    subject, stream = f"bench.sink.{uuid.uuid4().hex[:8]}", f"BENCH_SINK_{uuid.uuid4().hex[:8]}"
    sink = NatsSink(
        f"{url}?subject={subject}&stream={stream}", batch_size=batch_size, overflow="block", block_timeout=60
    )
    elapsed = time_sink(sink, events, warmup=token_events(1)[0])
    asyncio.run(_delete(url, stream))
    return len(events) / elapsed


async def bench_raw(url: str, events: list, batch_size: int) -> float:  # type: ignore[type-arg]
    """Events/s of js.publish_async for the same bodies and headers, batch by batch."""
    subject, stream = f"bench.raw.{uuid.uuid4().hex[:8]}", f"BENCH_RAW_{uuid.uuid4().hex[:8]}"
    bodies = json_bodies(events)
    headers = [message_headers(e, stream) for e in events]
    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=len(events) + 1)
    await js.add_stream(name=stream, subjects=[subject], duplicate_window=120)
    await js.publish(subject, b"warmup")
    dumps = json.dumps
    started = time.perf_counter()
    futures = [
        await js.publish_async(subject, dumps(body).encode(), headers=header)
        for body, header in zip(bodies, headers, strict=True)
    ]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    info = await js.stream_info(stream)
    assert info.state.messages == len(events) + 1, info.state
    await js.delete_stream(stream)
    await nc.close()
    return len(events) / elapsed


async def _delete(url: str, stream: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(stream)
    except NotFoundError:
        pass
    finally:
        await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    batch_size = NatsSink.batch_size
    events = token_events(args.events)
    sink_rates: list[float] = []
    raw_rates: list[float] = []
    for _ in range(args.rounds):
        raw_rates.append(asyncio.run(bench_raw(args.url, events, batch_size)))
        sink_rates.append(bench_sink(args.url, events, batch_size))
    report(
        f"NATS JetStream at {args.url}: {len(events)} token events, batch size {batch_size}",
        raw="raw nats-py publish_async",
        raw_rates=raw_rates,
        sink="NatsSink (enqueue..flush)",
        sink_rates=sink_rates,
    )


if __name__ == "__main__":
    main()
