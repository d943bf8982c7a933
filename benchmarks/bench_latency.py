"""End-to-end latency, emit -> a consumer in another process, at fixed rates: streamll sink vs the raw client.

    python benchmarks/bench_latency.py [--transports redis,nats,kafka] [--rates 100,1000,10000] [--rounds 2]

Every message carries the ``time.monotonic_ns()`` it was due at (one clock for
every process on Linux); a consumer process reading with the raw client reports
the delay of each message from then, so a producer falling behind its rate shows
on either side. raw: the client's own publish at the rate (``XADD`` per
message; JetStream ``publish_async``; ``AIOKafkaProducer.send`` on a loop thread of its own), ``json.dumps``
of each body inside the loop. sink: a token record (what ``TokenRun.emit_token``
hands to sinks) enqueued at the same rate, on the program thread. Rounds alternate raw / sink;
the medians of each round's p50 and p99 are printed with sink / raw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack, suppress
from typing import Any

REDIS_URL = os.environ.get("STREAMLL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
NATS_URL = os.environ.get("STREAMLL_BENCH_NATS_URL", "nats://127.0.0.1:4222")
WARMUP = 20
"""Messages sent (and ignored) before the measured ones: connections and caches warm."""


# ---------------------------------------------------------------------- consumer process


def consume(transport: str, where: str, dest: str, count: int) -> None:
    """Print ``ready``, then the delays (ns) of ``count`` messages as one JSON line."""
    delays: list[int] = []

    def seen(body: bytes) -> None:
        now = time.monotonic_ns()
        delays.append(now - json.loads(body)["data"]["t"])

    deadline = time.monotonic() + 60
    if transport == "redis":
        import redis

        client = redis.Redis.from_url(where)
        last = "0"  # a fresh key: everything written to it
        print("ready", flush=True)
        while len(delays) < count and time.monotonic() < deadline:
            reply = client.xread({dest: last}, block=1000, count=1000)
            for _stream, entries in reply or ():
                for entry_id, fields in entries:
                    last = entry_id
                    seen(fields[b"data"])
    elif transport == "nats":
        import nats

        async def run_nats() -> None:
            nc = await nats.connect(where)
            done = asyncio.Event()

            async def on_message(msg: Any) -> None:
                seen(msg.data)
                if len(delays) >= count:
                    done.set()

            await nc.subscribe(dest, cb=on_message)
            await nc.flush()
            print("ready", flush=True)
            with suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), deadline - time.monotonic())
            await nc.close()

        asyncio.run(run_nats())
    else:
        from aiokafka import AIOKafkaConsumer

        async def run_kafka() -> None:
            consumer = AIOKafkaConsumer(dest, bootstrap_servers=where, auto_offset_reset="latest", fetch_max_wait_ms=5)
            await consumer.start()
            await consumer.seek_to_end()
            for partition in consumer.assignment():
                await consumer.position(partition)
            print("ready", flush=True)
            while len(delays) < count and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=100)
                for records in batches.values():
                    for record in records:
                        seen(record.value)
            await consumer.stop()

        asyncio.run(run_kafka())
    print(json.dumps(delays), flush=True)


# ---------------------------------------------------------------------- producers


def paced(rate: int, count: int, send: Callable[[int, int], None]) -> None:
    """Call ``send(i, due_ns)`` for i in 0..count-1 at ``rate`` per second (catching up without sleeping when late).

    ``due_ns`` is when message i was due (``time.monotonic_ns()`` scale): the delay a consumer reports
    counts from then, so a producer running late is not hidden (no coordinated omission) on either side.
    """
    started = time.monotonic_ns()
    for index in range(count):
        due = started + index * 1_000_000_000 // rate
        delay = (due - time.monotonic_ns()) / 1e9
        if delay > 0:
            time.sleep(delay)
        send(index, due)


async def apaced(rate: int, count: int, send: Callable[[int, int], Any]) -> None:
    """``paced`` for a client on an event loop: its timers wake in whole milliseconds, so the last
    stretch before a message is due is slept on the thread, after the loop has run once (acks, flushes)."""
    started = time.monotonic_ns()
    for index in range(count):
        due = started + index * 1_000_000_000 // rate
        delay = (due - time.monotonic_ns()) / 1e9
        if delay > 0.002:
            await asyncio.sleep(delay - 0.002)
        await asyncio.sleep(0)
        delay = (due - time.monotonic_ns()) / 1e9
        if delay > 0:
            time.sleep(delay)
        await send(index, due)


def body(index: int, execution_id: str, due: int) -> dict[str, Any]:
    """A token-event-shaped body, as a raw client would build it."""
    return {
        "event_type": "token",
        "event_id": uuid.uuid4().hex,
        "execution_id": execution_id,
        "sequence": index,
        "timestamp": time.time(),
        "data": {"t": due, "token": f" word{index}", "token_index": index, "field": "answer"},
    }


async def raw_redis(rate: int, count: int, stream: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    await client.ping()

    async def send(index: int, due: int) -> None:
        message = body(index, "raw", due)
        await client.xadd(stream, {"data": json.dumps(message), "event_type": "token", "execution_id": "raw"})

    await apaced(rate, count, send)
    await client.aclose()


async def raw_nats(rate: int, count: int, subject: str, stream: str) -> None:
    import nats

    nc = await nats.connect(NATS_URL)
    js = nc.jetstream(publish_async_max_pending=count + 1)

    async def send(index: int, due: int) -> None:
        await js.publish_async(subject, json.dumps(body(index, "raw", due)).encode())

    await apaced(rate, count, send)
    await js.publish_async_completed()
    await nc.close()


def raw_kafka(rate: int, count: int, bootstrap: str, topic: str) -> None:
    """``AIOKafkaProducer.send`` at its best for a program on a thread: the producer runs on an event loop of
    its own, which never blocks in a sleep, so its sender task writes a message as soon as it is queued.

    (Paced on the producer's own loop, the sleeps between messages block the sender task: measured at
    about 4.5 ms p50 at 1,000/s against about 1 ms this way.)
    """
    from aiokafka import AIOKafkaProducer

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def started() -> Any:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
        await producer.start()
        return producer

    producer = asyncio.run_coroutine_threadsafe(started(), loop).result(30)
    queued: list[Any] = []

    def send(index: int, due: int) -> None:
        payload = json.dumps(body(index, "raw", due)).encode()
        queued.append(asyncio.run_coroutine_threadsafe(producer.send(topic, payload, key=b"raw"), loop))

    paced(rate, count, send)

    deliveries = [future.result(30) for future in queued]  # each send's delivery future, on the loop

    async def delivered() -> None:
        await asyncio.gather(*deliveries)
        await producer.stop()

    asyncio.run_coroutine_threadsafe(delivered(), loop).result(60)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def sink_round(sink: Any, rate: int, count: int) -> None:
    from streamll.core.context import Execution

    execution = Execution()
    enqueue = sink.enqueue
    try:
        from streamll.core.records import TokenLane, TokenRecord
    except ImportError:  # a streamll before token records (for before / after figures): the model path
        from streamll.core.emitter import make_event
        from streamll.core.events import TokenEvent

        def send(index: int, due: int) -> None:
            event, _ = make_event(
                "token", {"t": due}, execution=execution, cls=TokenEvent, token=f" word{index}", token_index=index,
                field="answer",
            )  # fmt: skip
            enqueue(event)
    else:

        def send(index: int, due: int) -> None:
            enqueue(
                TokenRecord(  # a lane per token: its data carries the time the token was due
                    TokenLane(execution.execution_id, None, {"t": due}, {}, None, "answer"), execution.next_sequence(),
                    f" word{index}", index, None,
                )
            )  # fmt: skip

    paced(rate, count, send)
    if not sink.flush(60):
        raise SystemExit(f"{sink.name} did not deliver: {sink.stats}")


# ---------------------------------------------------------------------- one measurement


def measure(transport: str, side: str, rate: int, seconds: float, bootstrap: str | None) -> list[float]:
    """Delays in ms of one round."""
    count = max(200, int(rate * seconds))
    tag = uuid.uuid4().hex[:8]
    if transport == "redis":
        where, dest = REDIS_URL, f"streamll-bench-latency:{tag}"
    elif transport == "nats":
        where, dest = NATS_URL, f"bench.latency.{tag}"
        stream = f"BENCH_LATENCY_{tag}"
        asyncio.run(_nats_stream(stream, dest))
    else:
        assert bootstrap is not None
        where, dest = bootstrap, f"bench-latency-{tag}"
        asyncio.run(_kafka_topic(bootstrap, dest))
    script = os.path.abspath(__file__)
    consumer = subprocess.Popen(
        [sys.executable, script, "--consume", transport, where, dest, str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    sink = None
    try:
        assert consumer.stdout is not None
        if consumer.stdout.readline().strip() != "ready":
            raise SystemExit(f"{transport} consumer did not start")
        if side == "sink":
            sink = make_sink(transport, where, dest, bootstrap)
            sink.start()
            sink_round(sink, 50, WARMUP)  # connected and warm, like the raw client
            sink_round(sink, rate, count - WARMUP)
        elif transport == "redis":
            asyncio.run(raw_redis(rate, count, dest))
        elif transport == "nats":
            asyncio.run(raw_nats(rate, count, dest, stream))
        else:
            raw_kafka(rate, count, where, dest)
        out, _ = consumer.communicate(timeout=90)
    finally:
        if sink is not None:
            sink.stop()
        if consumer.poll() is None:
            consumer.kill()
    if transport == "redis":
        import redis

        redis.Redis.from_url(REDIS_URL).delete(dest)
    elif transport == "nats":
        asyncio.run(_nats_stream(stream, dest, delete=True))
    delays = json.loads(out.strip().splitlines()[-1])
    if len(delays) < count:
        raise SystemExit(f"{transport} {side}: {len(delays)} of {count} messages arrived")
    return [delay / 1e6 for delay in delays[WARMUP:]]


def make_sink(transport: str, where: str, dest: str, bootstrap: str | None) -> Any:
    if transport == "redis":
        from streamll_redis import RedisSink

        return RedisSink(where, stream=dest)
    if transport == "nats":
        from streamll_nats import NatsSink

        return NatsSink(where, subject=dest, stream=f"BENCH_LATENCY_{dest.rsplit('.', 1)[-1]}")
    from streamll_kafka import KafkaSink

    return KafkaSink(f"kafka://{bootstrap}?topic={dest}&acks=1")


async def _nats_stream(stream: str, subject: str, delete: bool = False) -> None:
    import nats

    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    if delete:
        await js.delete_stream(stream)
    else:
        await js.add_stream(name=stream, subjects=[subject])
    await nc.close()


async def _kafka_topic(bootstrap: str, topic: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transports", default="redis,nats,kafka")
    parser.add_argument("--rates", default="100,1000,10000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.5, help="length of one round")
    parser.add_argument("--consume", nargs=4, metavar=("TRANSPORT", "WHERE", "DEST", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.consume:
        transport, where, dest, count = args.consume
        consume(transport, where, dest, int(count))
        return
    transports = args.transports.split(",")
    rates = [int(rate) for rate in args.rates.split(",")]
    with ExitStack() as stack:
        bootstrap = None
        if "kafka" in transports:
            bootstrap = os.environ.get("STREAMLL_BENCH_KAFKA")
            if bootstrap is None:
                from bench_kafka import private_broker

                bootstrap = stack.enter_context(private_broker("noida"))
        print(f"e2e latency emit -> consumer process, ms; medians of {args.rounds} rounds' p50 / p99")
        for transport in transports:
            for rate in rates:
                stats: dict[str, list[tuple[float, float]]] = {"raw": [], "sink": []}
                for _ in range(args.rounds):
                    for side in ("raw", "sink"):
                        delays = measure(transport, side, rate, args.seconds, bootstrap)
                        stats[side].append((percentile(delays, 0.5), percentile(delays, 0.99)))
                raw50 = statistics.median(p50 for p50, _ in stats["raw"])
                raw99 = statistics.median(p99 for _, p99 in stats["raw"])
                sink50 = statistics.median(p50 for p50, _ in stats["sink"])
                sink99 = statistics.median(p99 for _, p99 in stats["sink"])
                spread = ", ".join(f"{p50:.2f}/{p99:.2f}" for p50, p99 in stats["sink"])
                raw_spread = ", ".join(f"{p50:.2f}/{p99:.2f}" for p50, p99 in stats["raw"])
                print(
                    f"  {transport:<5} {rate:>6}/s  raw {raw50:7.2f} / {raw99:7.2f}"
                    f"   sink {sink50:7.2f} / {sink99:7.2f}"
                    f"   ratio p50 {sink50 / raw50:5.2f} (target <= 1.5)  p99 {sink99 / raw99:5.2f} (target <= 2)"
                    f"   rounds raw [{raw_spread}] sink [{spread}]"
                )


if __name__ == "__main__":
    main()
