"""Kafka URLs into a typed :class:`KafkaOptions`.

Forms (the query string carries the options)::

    kafka://host:port[,host:port...]?topic=NAME&acks=all&linger_ms=5&compression=zstd
    kafka+ssl://host:9093?topic=NAME&ssl_cafile=/ca.pem&ssl_certfile=/client.pem&ssl_keyfile=/client.key
    kafka+ssl://user:password@host:9093?sasl_mechanism=SCRAM-SHA-512

Credentials and file paths may also come from the environment when the URL
has none (``STREAMLL_KAFKA_*`` first, then ``KAFKA_*``; see
:data:`ENV_VARS`). Passwords are never part of a repr, a log line or an error
message: :attr:`KafkaOptions.display_url` and :func:`mask_url` leave them out.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, unquote

from streamll.errors import ConfigurationError
from streamll.url_options import SINK_OPTIONS, Converter, OptionReader, mask_url, split_url

SCHEMES = ("kafka", "kafka+ssl")
"""URL schemes this plugin serves; ``kafka+ssl`` turns TLS on."""
DEFAULT_URL = "kafka://localhost:9092"
DEFAULT_PORT = 9092
DEFAULT_TOPIC = "streamll"
DEFAULT_CLIENT_ID = "streamll"

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")

ENV_VARS: dict[str, tuple[str, ...]] = {
    "sasl_username": ("STREAMLL_KAFKA_SASL_USERNAME", "KAFKA_SASL_USERNAME"),
    "sasl_password": ("STREAMLL_KAFKA_SASL_PASSWORD", "KAFKA_SASL_PASSWORD"),
    "sasl_mechanism": ("STREAMLL_KAFKA_SASL_MECHANISM", "KAFKA_SASL_MECHANISM"),
    "security_protocol": ("STREAMLL_KAFKA_SECURITY_PROTOCOL", "KAFKA_SECURITY_PROTOCOL"),
    "ssl_cafile": ("STREAMLL_KAFKA_SSL_CAFILE", "KAFKA_SSL_CAFILE"),
    "ssl_certfile": ("STREAMLL_KAFKA_SSL_CERTFILE", "KAFKA_SSL_CERTFILE"),
    "ssl_keyfile": ("STREAMLL_KAFKA_SSL_KEYFILE", "KAFKA_SSL_KEYFILE"),
    "ssl_password": ("STREAMLL_KAFKA_SSL_PASSWORD", "KAFKA_SSL_PASSWORD"),
}
"""Environment variables read for an option the URL does not set, first match wins."""

Acks = Literal[0, 1, "all"]

_read = OptionReader("kafka")


def _acks(name: str, raw: str) -> Acks:
    value = raw.strip().lower()
    if value in ("all", "-1"):
        return "all"
    if value == "0":
        return 0
    if value == "1":
        return 1
    raise _read.error(name, raw, ": expected all (or -1), 1 or 0")


_codec = _read.choice(COMPRESSIONS)


def _compression(name: str, raw: str) -> str | None:
    value = _codec(name, raw)
    return None if value == "none" else value


def _security_options(read: OptionReader) -> dict[str, Converter[Any]]:
    """TLS and SASL options, with errors that say where the value came from."""

    def existing_file(name: str, raw: str) -> str:
        path = os.path.expanduser(read.text(name, raw))
        if not os.path.isfile(path):
            raise ConfigurationError(f"kafka {read.source} {name}: no such file {path!r}")
        return path

    return {
        "security_protocol": read.choice(SECURITY_PROTOCOLS),
        "ssl": read.boolean,
        "ssl_cafile": existing_file,
        "ssl_certfile": existing_file,
        "ssl_keyfile": existing_file,
        "ssl_password": read.text,
        "ssl_check_hostname": read.boolean,
        "sasl_mechanism": read.choice(SASL_MECHANISMS),
        "sasl_username": read.text,
        "sasl_password": read.text,
    }


CONNECTION_OPTIONS: dict[str, Converter[Any]] = {
    "topic": _read.text,
    "client_id": _read.text,
    "request_timeout_ms": _read.at_least(1),
    "metadata_max_age_ms": _read.at_least(1),
}
"""Options both sides use."""

SECURITY_OPTIONS = _security_options(_read)
"""TLS and SASL options (also read from :data:`ENV_VARS`)."""

_ENV_SECURITY_OPTIONS = _security_options(OptionReader("kafka", "environment variable"))

PRODUCER_OPTIONS: dict[str, Converter[Any]] = {
    "acks": _acks,
    "linger_ms": _read.at_least(0),
    "compression": _compression,
    "compression_type": _compression,
    "enable_idempotence": _read.boolean,
    "max_batch_size": _read.at_least(1),
}
"""Producer options (a consumer given the same URL ignores them)."""

CONSUMER_OPTIONS: dict[str, Converter[Any]] = {
    "group": _read.text,
    "from_beginning": _read.boolean,
    "fetch_max_wait_ms": _read.at_least(0),
    "session_timeout_ms": _read.at_least(1),
    "heartbeat_interval_ms": _read.at_least(1),
    "rebalance_timeout_ms": _read.at_least(1),
    "max_poll_interval_ms": _read.at_least(1),
    "start_timeout": _read.seconds,
}
"""Consumer options (a sink given the same URL ignores them)."""

KNOWN_OPTIONS = tuple(
    sorted({*CONNECTION_OPTIONS, *SECURITY_OPTIONS, *PRODUCER_OPTIONS, *CONSUMER_OPTIONS, *SINK_OPTIONS})
)
"""Every query option a Kafka URL accepts (``SINK_OPTIONS`` are ``BaseSink``'s, see ``streamll.url_options``)."""


# ---------------------------------------------------------------------------- the options


@dataclass(frozen=True)
class KafkaOptions:
    """Everything a Kafka URL says: brokers, topic, security, and producer / consumer tuning."""

    bootstrap_servers: tuple[str, ...] = (f"localhost:{DEFAULT_PORT}",)
    topic: str = DEFAULT_TOPIC
    client_id: str = DEFAULT_CLIENT_ID
    request_timeout_ms: int = 30_000
    """How long one request (and a produced batch awaiting acknowledgement) may take before it fails."""
    metadata_max_age_ms: int = 300_000

    security_protocol: str = "PLAINTEXT"
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: str | None = field(default=None, repr=False)
    """Password of an encrypted ``ssl_keyfile``."""
    ssl_check_hostname: bool = True
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    credential_source: str | None = None
    """Where the SASL password came from (``"url"`` or an environment variable's name): says where, never what."""

    acks: Acks = "all"
    linger_ms: int = 0
    """How long the producer waits to fill a request; streamll already hands it whole batches."""
    compression: str | None = None
    enable_idempotence: bool | None = None
    """``None``: on whenever ``acks=all`` (no duplicates from producer retries on a real Kafka cluster)."""
    max_batch_size: int = 65_536
    """Bytes per partition per produce request."""

    group: str | None = None
    from_beginning: bool | None = None
    fetch_max_wait_ms: int = 100
    """Longest a fetch waits on the broker for data; brokers that answer early ignore it."""
    session_timeout_ms: int | None = None
    heartbeat_interval_ms: int | None = None
    rebalance_timeout_ms: int | None = None
    max_poll_interval_ms: int | None = None
    start_timeout: float = 30.0
    """Seconds ``consumer.start()`` waits for partitions (group join or topic metadata)."""

    sink_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    """``BaseSink`` keyword options found in the query (buffer_size, overflow, ...)."""

    def __post_init__(self) -> None:
        if not self.bootstrap_servers:
            raise ConfigurationError("kafka URL names no broker: kafka://host:9092")
        if not self.topic:
            raise ConfigurationError("kafka topic must not be empty")
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise ConfigurationError(
                f"kafka security_protocol must be one of {', '.join(SECURITY_PROTOCOLS)}, "
                f"got {self.security_protocol!r}"
            )
        if self.enable_idempotence and self.acks != "all":
            raise ConfigurationError(
                f"kafka enable_idempotence=true needs acks=all (got acks={self.acks}); "
                "drop enable_idempotence or set acks=all"
            )
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ConfigurationError("kafka ssl_keyfile needs ssl_certfile (the client certificate it belongs to)")
        uses_sasl = self.security_protocol.startswith("SASL_")
        if uses_sasl:
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise ConfigurationError(
                    f"kafka sasl_mechanism must be one of {', '.join(SASL_MECHANISMS)} with {self.security_protocol}"
                )
            if not self.sasl_username or not self.sasl_password:
                raise ConfigurationError(
                    f"kafka {self.security_protocol} with {self.sasl_mechanism} needs a username and a password: "
                    "kafka://user:password@host, or STREAMLL_KAFKA_SASL_USERNAME / STREAMLL_KAFKA_SASL_PASSWORD"
                )
        elif self.sasl_username or self.sasl_password or self.sasl_mechanism:
            raise ConfigurationError(
                f"kafka SASL credentials were given but security_protocol={self.security_protocol} does not use them; "
                "use SASL_SSL (or SASL_PLAINTEXT)"
            )
        if not self.uses_ssl and (self.ssl_cafile or self.ssl_certfile or self.ssl_password):
            raise ConfigurationError(
                f"kafka TLS files were given but security_protocol={self.security_protocol} does not use TLS; "
                "use kafka+ssl:// (or security_protocol=SSL / SASL_SSL)"
            )

    @property
    def uses_ssl(self) -> bool:
        """True when connections are TLS (``SSL`` or ``SASL_SSL``)."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def effective_idempotence(self) -> bool:
        """Whether the producer is idempotent: as set, else whenever ``acks=all``."""
        return self.acks == "all" if self.enable_idempotence is None else self.enable_idempotence

    @property
    def display_url(self) -> str:
        """The URL without secrets: safe for reprs, logs and sink names."""
        scheme = "kafka+ssl" if self.uses_ssl else "kafka"
        user = f"{quote(self.sasl_username, safe='')}:***@" if self.sasl_username else ""
        return f"{scheme}://{user}{','.join(self.bootstrap_servers)}?topic={quote(self.topic, safe='')}"

    def replace(self, **changes: Any) -> KafkaOptions:
        """A copy with ``changes`` applied and validated."""
        return dataclasses.replace(self, **changes)

    def __repr__(self) -> str:
        return f"KafkaOptions({self.display_url!r}, security_protocol={self.security_protocol!r})"


# ---------------------------------------------------------------------------- parsing


def _servers(hostports: str) -> tuple[str, ...]:
    servers: list[str] = []
    for item in hostports.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ""
            if rest and not rest.startswith(":"):
                raise ConfigurationError(f"kafka broker address {item!r} is not [ipv6]:port")
            host_text = f"[{host}]"
        else:
            host_text, _, port_text = item.partition(":")
        if not host_text or host_text == "[]":
            raise ConfigurationError(f"kafka broker address {item!r} has no host")
        port = DEFAULT_PORT
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ConfigurationError(f"kafka broker address {item!r} has an invalid port")
            port = int(port_text)
        servers.append(f"{host_text}:{port}")
    return tuple(servers)


def _environment(name: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    for variable in ENV_VARS.get(name, ()):
        value = environ.get(variable)
        if value:
            return value, variable
    return None


def _relevant(name: str, protocol: str) -> bool:
    """Whether environment variable option ``name`` matters under an explicit ``security_protocol``."""
    if name.startswith("sasl_"):
        return protocol.startswith("SASL_")
    if name.startswith("ssl_"):
        return protocol.endswith("SSL")
    return True


def parse_kafka_url(url: str, environ: Mapping[str, str] | None = None) -> KafkaOptions:
    """Parse a ``kafka://`` or ``kafka+ssl://`` URL; raises ConfigurationError naming the problem."""
    parts = split_url(url, "Kafka", example=f"{DEFAULT_URL}?topic={DEFAULT_TOPIC}")
    scheme = parts.scheme
    if scheme not in SCHEMES:
        raise ConfigurationError(f"kafka URL must start with one of {', '.join(s + '://' for s in SCHEMES)}")
    environ = os.environ if environ is None else environ
    if parts.path.strip("/"):
        raise ConfigurationError(f"kafka URL {mask_url(url)!r} has a path; name the topic with ?topic=NAME")
    query = _read.query(
        parts.query,
        KNOWN_OPTIONS,
        credentials_hint="the URL (kafka+ssl://user:password@host) or in "
        "STREAMLL_KAFKA_SASL_USERNAME / STREAMLL_KAFKA_SASL_PASSWORD",
    )
    sink_options = _read.sink_options(query)
    userinfo, _, hostports = parts.netloc.rpartition("@")
    values: dict[str, Any] = {"bootstrap_servers": _servers(hostports) or (f"localhost:{DEFAULT_PORT}",)}
    if userinfo:
        user, has_password, secret = userinfo.partition(":")
        if user:
            values["sasl_username"] = unquote(user)
        if has_password and secret:
            values["sasl_password"] = unquote(secret)
            values["credential_source"] = "url"

    for name, raw in query.items():
        parser = {**CONNECTION_OPTIONS, **SECURITY_OPTIONS, **PRODUCER_OPTIONS, **CONSUMER_OPTIONS}[name]
        key = "compression" if name == "compression_type" else name
        if key in values and name in ("sasl_username", "sasl_password"):
            raise ConfigurationError(f"kafka {name} is given both in the URL's user part and as ?{name}=")
        if key in values:
            raise ConfigurationError("give kafka compression either as compression= or compression_type=, not both")
        values[key] = parser(name, raw)
        if name == "sasl_password":
            values["credential_source"] = "url"
    values["sink_options"] = sink_options

    explicit = values.get("security_protocol")
    for name in ENV_VARS:
        if name in values:
            continue
        if explicit is not None and not _relevant(name, explicit):
            continue
        found = _environment(name, environ)
        if found is None:
            continue
        raw, variable = found
        values[name] = _ENV_SECURITY_OPTIONS[name](variable, raw)
        if name == "sasl_password":
            values["credential_source"] = variable

    want_ssl = values.pop("ssl", None)
    if "security_protocol" not in values:
        tls = scheme == "kafka+ssl" or bool(want_ssl) or any(values.get(n) for n in ("ssl_cafile", "ssl_certfile"))
        sasl = bool(values.get("sasl_username") or values.get("sasl_password") or values.get("sasl_mechanism"))
        values["security_protocol"] = ("SASL_" if sasl else "") + ("SSL" if tls else "PLAINTEXT")
    elif scheme == "kafka+ssl" and not values["security_protocol"].endswith("SSL"):
        raise ConfigurationError(f"kafka+ssl:// contradicts security_protocol={values['security_protocol']}")
    if values["security_protocol"].startswith("SASL_") and "sasl_mechanism" not in values:
        values["sasl_mechanism"] = "PLAIN"
    compression = values.get("compression")
    if compression:
        check_compression(compression)
    return KafkaOptions(**values)


def check_compression(codec: str) -> None:
    """Raise ConfigurationError when the library for ``codec`` is not installed."""
    from aiokafka import codec as codecs

    available: dict[str, Callable[[], bool]] = {
        "gzip": codecs.has_gzip,
        "snappy": codecs.has_snappy,
        "lz4": codecs.has_lz4,
        "zstd": codecs.has_zstd,
    }
    if codec not in available:
        raise ConfigurationError(f"kafka compression {codec!r} is not one of {', '.join(COMPRESSIONS)}")
    if not available[codec]():
        raise ConfigurationError(
            f"kafka compression={codec} needs the cramjam library, which is not installed: "
            "pip install 'streamll-kafka[compression]' (or pip install cramjam)"
        )


__all__ = [
    "COMPRESSIONS",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_PORT",
    "DEFAULT_TOPIC",
    "DEFAULT_URL",
    "ENV_VARS",
    "KNOWN_OPTIONS",
    "SASL_MECHANISMS",
    "SCHEMES",
    "SECURITY_PROTOCOLS",
    "SINK_OPTIONS",
    "KafkaOptions",
    "check_compression",
    "mask_url",
    "parse_kafka_url",
]
