"""Fault matrix: scenario x transport -> emitted / delivered / counted drops / lost.

Each cell runs against a private broker of its own (redis-server, nats-server -js,
noida-db) on a free port, so stopping or killing it disturbs nothing else.
"emitted" events are handed to the sink; "delivered" is the sink's count;
"counted" is what the sink reported as dropped or failed; "read" is what a
consumer reads back from the destination; "lost" = emitted - read - counted:
events neither delivered to a reader nor reported. The accounting is exact when
lost is 0 (every event either arrived or was counted).

    python benchmarks/fault_matrix.py [--transports redis,nats,kafka] [--events 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamll.consumer import from_url  # noqa: E402
from streamll.plugins import create_sink  # noqa: E402
from streamll.sinks.base import BaseSink  # noqa: E402

from benchmarks._common import token_events  # noqa: E402
from tests.helpers import BrokerProcess, free_port  # noqa: E402


@dataclass
class Broker:
    """A private broker and the sink / consumer URL for one destination on it."""

    process: BrokerProcess
    url: str


def start_broker(transport: str, workdir: Path) -> Broker:
    port = free_port()
    if transport == "redis":
        command = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", str(workdir)]
        url = f"redis://127.0.0.1:{port}/0?stream=faults"
    elif transport == "nats":
        store = workdir / "js"
        store.mkdir(parents=True, exist_ok=True)
        command = [shutil.which("nats-server") or "nats-server", "-js", "-a", "127.0.0.1", "-p", str(port)]
        command += ["-sd", str(store)]
        url = f"nats://127.0.0.1:{port}?subject=faults.events&stream=FAULTS"
    else:
        import noida_db  # the broker binary in its wheel (the console script is a wrapper that outlives a kill)

        noida = str(Path(noida_db.__file__).with_name("noida-db"))
        command = [noida, "start", "--host", "127.0.0.1", "--only", "kafka", "--kafka-port", str(port)]
        command += ["--data-dir", str(workdir / "noida")]
        url = f"kafka://127.0.0.1:{port}?topic=faults&request_timeout_ms=5000"
    process = BrokerProcess(transport, command, port, workdir=workdir)
    process.start()
    return Broker(process, url)


def kill(process: BrokerProcess) -> None:
    """SIGKILL: the broker gets no chance to save anything."""
    assert process.process is not None
    process.process.kill()
    process.process.wait(10)
    process.process = None


async def read_back(url: str, expected: int, idle: float = 3.0) -> int:
    """How many distinct events a fresh reader finds (stops ``idle`` seconds after the last one)."""
    seen: set[str] = set()
    async with from_url(url, from_beginning=True) as consumer:
        while len(seen) < expected:
            event = await consumer.consume_one(timeout=idle)
            if event is None:
                break
            seen.add(event.event_id)
    return len(seen)


def healthy(sink: BaseSink, broker: Broker, events: list[Any]) -> None:
    for event in events:
        sink.enqueue(event)
    sink.flush(60)


def graceful_restart(sink: BaseSink, broker: Broker, events: list[Any]) -> None:
    half = len(events) // 2
    for event in events[:half]:
        sink.enqueue(event)
    sink.flush(30)
    broker.process.stop()
    for event in events[half:]:
        sink.enqueue(event)
    broker.process.start()
    sink.flush(60)


def killed_mid_run(sink: BaseSink, broker: Broker, events: list[Any]) -> None:
    half = len(events) // 2
    for event in events[:half]:
        sink.enqueue(event)
    sink.flush(30)
    kill(broker.process)
    broker.process.start()
    for event in events[half:]:
        sink.enqueue(event)
    sink.flush(60)


def overflow_while_down(sink: BaseSink, broker: Broker, events: list[Any]) -> None:
    """Down while the program emits more than the buffer holds (drop_oldest, buffer 100)."""
    sink.enqueue(events[0])
    sink.flush(30)
    broker.process.stop()
    for event in events[1:]:
        sink.enqueue(event)
    broker.process.start()
    sink.flush(60)


def down_at_exit(sink: BaseSink, broker: Broker, events: list[Any]) -> None:
    """Never reachable: the exit drain gives up at once and counts everything."""
    broker.process.stop()
    for event in events:
        sink.enqueue(event)


SCENARIOS: dict[str, tuple[Callable[[BaseSink, Broker, list[Any]], None], dict[str, Any]]] = {
    "healthy": (healthy, {}),
    "graceful restart": (graceful_restart, {}),
    "SIGKILL + restart": (killed_mid_run, {}),
    "overflow while down": (overflow_while_down, {"buffer_size": 100}),
    "down for the whole run": (down_at_exit, {}),
}


def sink_url(url: str, options: dict[str, Any]) -> str:
    extra = "&".join(f"{key}={value}" for key, value in options.items())
    return f"{url}&{extra}" if extra else url


def run_cell(transport: str, scenario: str, count: int) -> dict[str, Any]:
    action, options = SCENARIOS[scenario]
    with tempfile.TemporaryDirectory(prefix="streamll-faults-") as directory:
        broker = start_broker(transport, Path(directory))
        try:
            sink: BaseSink = create_sink(sink_url(broker.url, options))
            events = token_events(count, executions=8)
            started = time.monotonic()
            action(sink, broker, events)
            sink.stop(timeout=10)
            stop_seconds = time.monotonic() - started
            stats = sink.stats
            if broker.process.process is None:
                broker.process.start()
            read = asyncio.run(read_back(broker.url, count))
        finally:
            broker.process.stop()
    counted = stats.dropped + stats.failed
    return {
        "emitted": count,
        "delivered": stats.delivered,
        "counted": counted,
        "read": read,
        "lost": count - read - counted,
        "seconds": stop_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transports", default="redis,nats,kafka")
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    print(f"{'scenario':24} {'transport':9} {'emitted':>7} {'delivered':>9} {'counted':>7} {'read':>6} {'lost':>5}")
    for scenario in SCENARIOS:
        for transport in args.transports.split(","):
            try:
                cell = run_cell(transport, scenario, args.events)
            except Exception as exc:
                print(f"{scenario:24} {transport:9} error: {type(exc).__name__}: {exc}")
                continue
            print(
                f"{scenario:24} {transport:9} {cell['emitted']:7d} {cell['delivered']:9d} {cell['counted']:7d} "
                f"{cell['read']:6d} {cell['lost']:5d}   ({cell['seconds']:.1f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
