"""The web relay under 500 concurrent SSE clients: emit -> client socket delay, and memory per client.

One relay process (``streamll serve``, uvicorn) reads a Redis source with
per-execution keys. Each round, a producer emits token events at a steady rate
in one execution (the real emit path: ``streamll.execution`` + ``RedisSink``);
meanwhile

* baseline: one process reads the broker directly (``RedisStreamConsumer``,
  the way a service would) and records, per event, receive time - event timestamp;
* candidate: one process holds ``--clients`` SSE connections to the relay for that
  execution and records the same delay for every event on every connection.

Both run at once, on the same events. The report gives, per round and as the
median over rounds (with min-max), p50 and p99 of each and the ratio
relay / direct, plus the relay's resident memory per connected client (RSS with
the clients connected minus RSS before they connected, divided by their number).

    python benchmarks/bench_relay.py [--clients 500] [--events 100] [--rate 25] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def rss_kib(pid: int) -> int:
    """Resident memory of a process in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ client processes


TIMESTAMP = b'"timestamp":"'


def timestamp_of(message: bytes) -> float:
    """The event timestamp in one SSE message, read without decoding the whole JSON body."""
    start = message.index(TIMESTAMP) + len(TIMESTAMP)
    text = message[start : message.index(b'"', start)].decode().replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


async def sse_client(host: str, port: int, path: str, delays: list[float], ready: asyncio.Event) -> None:
    """One SSE connection (HTTP/1.0: no chunked framing); records each event's delay until the stream ends."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    pending = b""
    while b"\r\n\r\n" not in pending:  # status line and headers
        pending += await reader.read(65536)
    pending = pending.split(b"\r\n\r\n", 1)[1]
    ready.set()
    while chunk := await reader.read(65536):
        received = time.time()
        pending += chunk
        *messages, pending = pending.split(b"\n\n")
        delays.extend(received - timestamp_of(message) for message in messages if b"data: {" in message)
    writer.close()


async def run_sse_clients(base: str, execution_id: str, clients: int) -> None:
    url = httpx.URL(base)
    path = f"/executions/{execution_id}/events"
    delays: list[float] = []
    readies = [asyncio.Event() for _ in range(clients)]
    tasks = []
    for ready in readies:
        tasks.append(asyncio.create_task(sse_client(url.host, url.port or 80, path, delays, ready)))
        await asyncio.sleep(0)
    await asyncio.gather(*(ready.wait() for ready in readies))
    print("ready", flush=True)
    await asyncio.gather(*tasks)
    print(json.dumps({"delays": delays, "cpu": time.process_time()}), flush=True)


async def run_direct(source: str, execution_id: str, expected: int) -> None:
    from streamll.consumer import RedisStreamConsumer

    consumer = RedisStreamConsumer(source, execution_id=execution_id)
    await consumer.start()
    print("ready", flush=True)
    delays: list[float] = []
    try:
        while len(delays) < expected:
            event = await consumer.consume_one(timeout=60)
            if event is None:
                break
            delays.append(time.time() - event.timestamp.timestamp())
    finally:
        await consumer.stop()
    print(json.dumps({"delays": delays}), flush=True)


# ------------------------------------------------------------------ orchestration


def load() -> str:
    """The 1-minute load average (the figures depend on what else the machine runs)."""
    return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_relay(source: str, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "streamll.cli", "serve", source, "--port", str(port)]
    relay = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/executions", timeout=1).status_code == 200:
                return relay
        except httpx.HTTPError:
            time.sleep(0.1)
    relay.kill()
    raise SystemExit("the relay did not start")


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=dict(os.environ)
    )


def wait_ready(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != "ready":
        raise SystemExit(f"client process failed: {line!r}")


def result_of(process: subprocess.Popen[str]) -> list[float]:
    out, _ = process.communicate(timeout=300)
    result = json.loads(out.strip().splitlines()[-1])
    if "cpu" in result:
        print(f"  (SSE client process CPU: {result['cpu']:.2f} s)", flush=True)
    return result["delays"]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def one_round(source: str, relay: subprocess.Popen[bytes], base: str, args: argparse.Namespace) -> dict[str, float]:
    import streamll
    from streamll_redis import RedisSink

    sink = RedisSink(source)
    run = streamll.execution(sinks=[sink])
    expected = args.events + 2  # the run's start and end around the tokens
    rss_before = rss_kib(relay.pid)
    direct = spawn("--direct", source, run.execution_id, str(expected))
    clients = spawn("--sse", base, run.execution_id, str(args.clients))
    wait_ready(direct)
    wait_ready(clients)
    rss_connected = rss_kib(relay.pid)
    cpu_before = cpu_seconds(relay.pid)
    with run:
        for index in range(args.events):
            streamll.emit("token", {"token": f" w{index}", "token_index": index, "field": "answer"})
            time.sleep(1 / args.rate)
    sink.flush(30)
    sse, plain = result_of(clients), result_of(direct)
    cpu = cpu_seconds(relay.pid) - cpu_before
    sink.stop(timeout=5)
    if len(sse) != expected * args.clients or len(plain) != expected:
        raise SystemExit(f"lost events: sse {len(sse)}/{expected * args.clients}, direct {len(plain)}/{expected}")
    return {
        "sse_p50": percentile(sse, 0.5) * 1000,
        "sse_p99": percentile(sse, 0.99) * 1000,
        "direct_p50": percentile(plain, 0.5) * 1000,
        "direct_p99": percentile(plain, 0.99) * 1000,
        "kib_per_client": (rss_connected - rss_before) / args.clients,
        "relay_cpu_us_per_message": cpu / len(sse) * 1e6,
    }


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.2f}  ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--events", type=int, default=100, help="token events per round")
    parser.add_argument("--rate", type=float, default=25.0, help="events per second")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default=os.environ.get("STREAMLL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--sse", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--direct", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sse:
        asyncio.run(run_sse_clients(args.sse[0], args.sse[1], int(args.sse[2])))
        return
    if args.direct:
        asyncio.run(run_direct(args.direct[0], args.direct[1], int(args.direct[2])))
        return

    stream = f"bench-relay:{uuid.uuid4().hex[:8]}"
    source = f"{args.redis}?stream={stream}&per_execution=true"
    print(f"relay: 1 process, {args.clients} SSE clients, {args.events} events/round at {args.rate:g}/s")
    print(f"(a fresh relay process per round, so its memory growth is the clients'; load average {load()})")
    rounds = []
    try:
        for number in range(1, args.rounds + 1):
            port = free_port()
            relay = start_relay(source, port)
            try:
                figures = one_round(source, relay, f"http://127.0.0.1:{port}", args)
            finally:
                relay.kill()
                relay.wait()
            rounds.append(figures)
            print(
                f"round {number}: relay p50 {figures['sse_p50']:.2f} ms p99 {figures['sse_p99']:.2f} ms | "
                f"direct p50 {figures['direct_p50']:.2f} ms p99 {figures['direct_p99']:.2f} ms | "
                f"{figures['kib_per_client']:.1f} KiB/client | relay CPU "
                f"{figures['relay_cpu_us_per_message']:.0f} us/message"
            )
    finally:
        import redis

        client = redis.Redis.from_url(args.redis)
        keys = list(client.scan_iter(match=f"{stream}*"))
        if keys:
            client.delete(*keys)
    print("median over rounds (min-max):")
    for name in ("p50", "p99"):
        relay_ms = [r[f"sse_{name}"] for r in rounds]
        direct_ms = [r[f"direct_{name}"] for r in rounds]
        ratios = [r[f"sse_{name}"] / r[f"direct_{name}"] for r in rounds]
        print(f"  {name} emit->socket  relay {spread(relay_ms)} ms   direct {spread(direct_ms)} ms")
        print(f"  {name} ratio relay/direct     {spread(ratios)}")
    print(f"  memory per connected client  {spread([r['kib_per_client'] for r in rounds])} KiB")
    print(f"  relay CPU per SSE message    {spread([r['relay_cpu_us_per_message'] for r in rounds])} us")


if __name__ == "__main__":
    main()
