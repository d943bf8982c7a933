"""Authentication and TLS against private servers: user/password, token, NKey seed file, TLS with a CA."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamll.testing.contract import make_execution_events, read, write
from streamll_nats import NatsSink, NatsStreamConsumer

from tests.helpers import (
    BrokerProcess,
    assert_one_line_error,
    broker_unavailable,
    exit_with_sinks,
    free_port,
    require_module,
    run_cli,
    skip_or_fail,
    wait_until,
)
from tests.nats.conftest import start_private_server

pytestmark = pytest.mark.nats

SECRET = "Zq9-very-secret"


StartServer = Callable[..., BrokerProcess]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Starts private JetStream servers with extra flags; all are stopped after the test."""
    servers: list[BrokerProcess] = []

    def start(*flags: str) -> BrokerProcess:
        server = None
        try:
            server = start_private_server(tmp_path / f"server{len(servers)}", *flags)
        except RuntimeError as exc:
            broker_unavailable("NATS", f"private nats-server did not start: {exc}")
        if server is None:
            broker_unavailable("NATS", "nats-server is not installed")
        assert server is not None
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


async def round_trip(url: str, count: int = 3) -> None:
    """Write ``count`` + 2 events through a sink and read them back with a consumer."""
    sink = NatsSink(url)
    _, events = make_execution_events(count)
    try:
        await asyncio.to_thread(write, sink, events)
        async with NatsStreamConsumer(url, from_beginning=True) as consumer:
            received = await read(consumer, len(events))
    finally:
        await asyncio.to_thread(sink.stop, 5)
    assert [e.event_id for e in received] == [e.event_id for e in events]


def wait_for_error(sink: NatsSink, timeout: float = 10.0) -> str:
    wait_until(lambda: sink.stats.last_error, timeout, what="the sink to report an error")
    return str(sink.stats.last_error)


async def test_user_and_password(tmp_path: Path, start_server: StartServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="streamll")
    server = start_server("--user", "alice", "--pass", SECRET)
    await round_trip(f"nats://alice:{SECRET}@127.0.0.1:{server.port}?subject=auth.events&stream=AUTH")

    wrong = NatsSink(f"nats://alice:wrong-{SECRET}@127.0.0.1:{server.port}?subject=auth.events&stream=AUTH")
    wrong.enqueue(make_execution_events(0)[1][0])
    error = await asyncio.to_thread(wait_for_error, wrong)
    await asyncio.to_thread(wrong.stop, 0.2)
    assert "authorization" in error.lower() and wrong.stats.delivered == 0 and wrong.stats.dropped == 1
    assert SECRET not in caplog.text and SECRET not in error and SECRET not in repr(wrong)


async def test_consumer_with_wrong_credentials_says_authorization_violation(start_server: StartServer) -> None:
    server = start_server("--user", "alice", "--pass", SECRET)
    consumer = NatsStreamConsumer(
        f"nats://alice:wrong-{SECRET}@127.0.0.1:{server.port}?subject=auth.events&stream=AUTH"
    )
    with pytest.raises(Exception, match="Authorization Violation") as raised:
        await consumer.start()
    assert SECRET not in str(raised.value)


async def test_token(tmp_path: Path, start_server: StartServer) -> None:
    server = start_server("--auth", SECRET)
    await round_trip(f"nats://{SECRET}@127.0.0.1:{server.port}?subject=auth.events&stream=AUTH")
    await round_trip(f"nats://127.0.0.1:{server.port}?token={SECRET}&subject=auth.other&stream=AUTH2")


async def test_nkey_seed_file(tmp_path: Path, start_server: StartServer) -> None:
    nkeys = require_module("nkeys", "NKey auth needs the nkeys extra: pip install 'streamll-nats[nkeys]'")
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    seed_file = tmp_path / "user.nk"
    seed_file.write_bytes(seed + b"\n")
    config = tmp_path / "nkey.conf"
    config.write_text(f'authorization {{ users = [ {{ nkey: "{public}" }} ] }}\n')
    server = start_server("-c", str(config))
    await round_trip(f"nats://127.0.0.1:{server.port}?nkey={seed_file}&subject=auth.events&stream=AUTH")


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 signed by it (with the openssl command)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        skip_or_fail("openssl is not installed")
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca_cert),
        "-days",
        "1",
        "-subj",
        "/CN=streamll test CA",
    )
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca_cert),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "1",
        "-extfile",
        str(ext),
    )
    return ca_cert, cert, key


async def test_tls_with_a_private_ca(tmp_path: Path, start_server: StartServer) -> None:
    ca, cert, key = make_certificates(tmp_path)
    server = start_server("--tls", "--tlscert", str(cert), "--tlskey", str(key))
    port = server.port
    await round_trip(f"tls://127.0.0.1:{port}?tls_ca={ca}&subject=tls.events&stream=TLS")

    untrusted = NatsSink(f"tls://127.0.0.1:{port}?subject=tls.events&stream=TLS")  # system CAs only
    untrusted.enqueue(make_execution_events(0)[1][0])
    error = await asyncio.to_thread(wait_for_error, untrusted)
    await asyncio.to_thread(untrusted.stop, 0.2)
    assert "certificate" in error.lower() and untrusted.stats.delivered == 0


async def test_tail_says_in_one_line_that_the_credentials_were_rejected(start_server: StartServer) -> None:
    server = start_server("--user", "alice", "--pass", SECRET)
    url = f"nats://alice:wrong-{SECRET}@127.0.0.1:{server.port}?subject=auth.events&stream=AUTH"
    line = assert_one_line_error(
        await asyncio.to_thread(run_cli, "tail", url),
        "streamll tail: nats://alice:***@",
        "rejected the credentials",
        "Authorization Violation",
    )
    assert SECRET not in line
    refused = free_port()
    assert_one_line_error(
        await asyncio.to_thread(run_cli, "tail", f"nats://127.0.0.1:{refused}"),
        f"streamll tail: connection refused by nats://127.0.0.1:{refused}",
    )


def test_exit_with_a_server_that_refuses_connections_is_quick_and_says_so() -> None:
    port = free_port()
    seconds, done = exit_with_sinks(f"nats://127.0.0.1:{port}?subject=gone.events&stream=GONE")
    assert done.returncode == 0, done.stderr
    assert seconds < 5, f"the exit drain took {seconds:.1f}s with STREAMLL_EXIT_TIMEOUT=15"
    assert f"connection refused to nats://127.0.0.1:{port}" in done.stderr, done.stderr
    assert "stopped with 5 undelivered event(s)" in done.stderr
