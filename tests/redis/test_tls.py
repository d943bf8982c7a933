"""rediss://: a private TLS redis-server that requires client certificates."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamll.testing.contract import make_execution_events, read, write

from tests.helpers import BrokerProcess, broker_unavailable, free_port, skip_or_fail, wait_until
from tests.redis.conftest import redis_server

pytestmark = pytest.mark.redis

LEAF_EXTENSIONS = (
    "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    "basicConstraints=CA:FALSE\n"
    "keyUsage=digitalSignature,keyEncipherment\n"
    "extendedKeyUsage=serverAuth,clientAuth\n"
    "authorityKeyIdentifier=keyid\n"
)


def make_certificates(directory: Path) -> None:
    """A throwaway CA plus server and client certificates signed by it (openssl CLI)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=streamll test CA")
    (directory / "leaf.ext").write_text(LEAF_EXTENSIONS)
    for name in ("server", "client"):
        openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", "leaf.ext",
        )  # fmt: skip


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """(port, certificate directory) of a TLS-only redis-server requiring client certificates."""
    if shutil.which("openssl") is None:
        skip_or_fail("the openssl command is needed to make test certificates")
    directory = tmp_path_factory.mktemp("tls")
    make_certificates(directory)
    port = free_port()
    command = [
        redis_server(), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no",
        "--tls-cert-file", str(directory / "server.crt"), "--tls-key-file", str(directory / "server.key"),
        "--tls-ca-cert-file", str(directory / "ca.crt"), "--tls-auth-clients", "yes",
    ]  # fmt: skip
    server = BrokerProcess("redis-tls", command, port)
    try:
        server.start()
    except RuntimeError as exc:
        broker_unavailable("redis", f"redis-server with TLS did not start (built without TLS?): {exc}")
    yield port, directory
    server.stop()


def tls_url(port: int, directory: Path, *, client_certificate: bool = True) -> str:
    url = f"rediss://127.0.0.1:{port}/0?stream=over-tls&ssl_ca_certs={directory / 'ca.crt'}"
    if client_certificate:
        url += f"&ssl_certfile={directory / 'client.crt'}&ssl_keyfile={directory / 'client.key'}"
    return url


async def test_sink_and_consumer_over_tls(tls_redis: tuple[int, Path], make_sink, make_consumer) -> None:
    port, directory = tls_redis
    url = tls_url(port, directory)
    sink = make_sink(url)
    _, events = make_execution_events(5)
    await asyncio.to_thread(write, sink, events)
    consumer = make_consumer(url, from_beginning=True, group="tls")
    await consumer.start()
    received = await read(consumer, len(events))
    assert [event.event_id for event in received] == [event.event_id for event in events]


def test_tls_without_a_client_certificate_is_refused_and_counted(
    tls_redis: tuple[int, Path], make_sink: Callable[..., object]
) -> None:
    port, directory = tls_redis
    sink = make_sink(tls_url(port, directory, client_certificate=False) + "&buffer_size=10")
    _, events = make_execution_events(1)
    for event in events:
        sink.enqueue(event)
    assert wait_until(lambda: sink.stats.write_errors >= 1)
    assert sink.stats.delivered == 0
    sink.stop(timeout=0.2)
    assert sink.stats.dropped == len(events)
