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

import os
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator
from streamll.errors import ConfigurationError
from streamll.url_options import (
    BOOLEAN,
    SECONDS,
    SINK_OPTIONS,
    TEXT,
    Converter,
    Opt,
    OptionReader,
    UrlOptions,
    at_least,
    converted,
    display_url,
    env_names,
    from_environment,
    host_port,
    mask_url,
    one_of,
    parse_hosts,
    split_url,
    userinfo,
)

SCHEMES = ("kafka", "kafka+ssl")
"""URL schemes this plugin serves; ``kafka+ssl`` turns TLS on."""
DEFAULT_URL = "kafka://localhost:9092"
DEFAULT_PORT = 9092
DEFAULT_TOPIC = "streamll"
DEFAULT_CLIENT_ID = "streamll"
LEGAL_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
"""The topic names Kafka allows (besides ``.`` and ``..``): brokers refuse any other."""

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
COMPRESSIONS = ("none", "gzip", "snappy", "lz4", "zstd")

_ENV_OPTIONS = (
    "sasl_username",
    "sasl_password",
    "sasl_mechanism",
    "security_protocol",
    "ssl_cafile",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_password",
)
ENV_VARS: dict[str, tuple[str, ...]] = {
    name: env_names("kafka", name, f"KAFKA_{name.upper()}") for name in _ENV_OPTIONS
}
"""Environment variables read for an option the URL does not set, first match wins."""

Acks = Literal[0, 1, "all"]


def _acks(name: str, raw: str) -> Acks:
    """``all`` (or ``-1``), ``1`` or ``0``."""
    value = raw.strip().lower()
    if value in ("all", "-1"):
        return "all"
    if value == "0":
        return 0
    if value == "1":
        return 1
    raise OptionReader("kafka").error(name, raw, ": expected all (or -1), 1 or 0")


def _compression(read: OptionReader) -> Converter[str | None]:
    """One of :data:`COMPRESSIONS`; ``none`` becomes ``None``."""
    codec = read.choice(COMPRESSIONS)

    def convert(name: str, raw: str) -> str | None:
        """``raw`` as a codec name, ``None`` for ``none``."""
        value = codec(name, raw)
        return None if value == "none" else value

    return convert


def _existing_file(read: OptionReader) -> Converter[str]:
    """A path (``~`` expanded) to a file that exists; errors say where the value came from."""

    def convert(name: str, raw: str) -> str:
        """``raw`` as the path of an existing file."""
        path = os.path.expanduser(read.text(name, raw))
        if not os.path.isfile(path):
            raise ConfigurationError(f"kafka {read.source} {name}: no such file {path!r}")
        return path

    return convert


FILE = Opt(_existing_file)


class KafkaOptions(UrlOptions):
    """Everything a Kafka URL says: brokers, topic, security, and producer / consumer tuning."""

    transport: ClassVar[str] = "kafka"

    bootstrap_servers: tuple[str, ...] = (f"localhost:{DEFAULT_PORT}",)
    topic: Annotated[str, TEXT] = DEFAULT_TOPIC
    client_id: Annotated[str, TEXT] = DEFAULT_CLIENT_ID
    request_timeout_ms: Annotated[int, at_least(1)] = 30_000
    """How long one request (and a produced batch awaiting acknowledgement) may take before it fails."""
    metadata_max_age_ms: Annotated[int, at_least(1)] = 300_000

    security_protocol: Annotated[str, one_of(SECURITY_PROTOCOLS)] = "PLAINTEXT"
    ssl_cafile: Annotated[str | None, FILE] = None
    ssl_certfile: Annotated[str | None, FILE] = None
    ssl_keyfile: Annotated[str | None, FILE] = None
    ssl_password: Annotated[str | None, TEXT] = Field(default=None, repr=False)
    """Password of an encrypted ``ssl_keyfile``."""
    ssl_check_hostname: Annotated[bool, BOOLEAN] = True
    sasl_mechanism: Annotated[str | None, one_of(SASL_MECHANISMS)] = None
    sasl_username: Annotated[str | None, TEXT] = None
    sasl_password: Annotated[str | None, TEXT] = Field(default=None, repr=False)
    credential_source: str | None = None
    """Where the SASL password came from (``"url"`` or an environment variable's name): says where, never what."""

    acks: Annotated[Acks, converted(_acks)] = "all"
    linger_ms: Annotated[int, at_least(0)] = 0
    """How long the producer waits to fill a request; streamll already hands it whole batches."""
    compression: Annotated[str | None, Opt(_compression)] = None
    enable_idempotence: Annotated[bool | None, BOOLEAN] = None
    """``None``: on whenever ``acks=all`` (no duplicates from producer retries on a real Kafka cluster)."""
    max_batch_size: Annotated[int, at_least(1)] = 65_536
    """Bytes per partition per produce request."""

    group: Annotated[str | None, TEXT] = None
    from_beginning: Annotated[bool | None, BOOLEAN] = None
    fetch_max_wait_ms: Annotated[int, at_least(0)] = 100
    """Longest a fetch waits on the broker for data; brokers that answer early ignore it."""
    session_timeout_ms: Annotated[int | None, at_least(1)] = None
    heartbeat_interval_ms: Annotated[int | None, at_least(1)] = None
    rebalance_timeout_ms: Annotated[int | None, at_least(1)] = None
    max_poll_interval_ms: Annotated[int | None, at_least(1)] = None
    start_timeout: Annotated[float, SECONDS] = 30.0
    """Seconds ``consumer.start()`` waits for partitions (group join or topic metadata)."""

    sink_options: dict[str, Any] = Field(default_factory=dict)
    """``BaseSink`` keyword options found in the query (buffer_size, overflow, ...)."""

    @model_validator(mode="after")
    def _check(self) -> KafkaOptions:
        """Brokers, topic, protocol, idempotence, TLS files and SASL credentials fit together."""
        if not self.bootstrap_servers:
            raise ConfigurationError("kafka URL names no broker: kafka://host:9092")
        if not self.topic:
            raise ConfigurationError("kafka topic must not be empty")
        if not LEGAL_TOPIC.fullmatch(self.topic) or self.topic in (".", ".."):
            raise ConfigurationError(
                f"kafka topic {self.topic!r} is not a legal Kafka topic name: "
                "use letters, digits, '.', '_' and '-', at most 249 characters (and not '.' or '..')"
            )
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
        return self

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
        return display_url(
            "kafka+ssl" if self.uses_ssl else "kafka",
            ",".join(self.bootstrap_servers),
            user=self.sasl_username,
            secret=bool(self.sasl_username),
            query={"topic": self.topic},
        )

    def __repr__(self) -> str:
        """The display URL and the security protocol."""
        return f"KafkaOptions({self.display_url!r}, security_protocol={self.security_protocol!r})"


_OPTIONS = {**KafkaOptions.query_options(), "ssl": KafkaOptions.reader().boolean}
_OPTIONS["compression_type"] = _OPTIONS["compression"]
_ENV_CONVERTERS = KafkaOptions.query_options("environment variable")
KNOWN_OPTIONS = tuple(sorted({*_OPTIONS, *SINK_OPTIONS}))
"""Every query option a Kafka URL accepts (``SINK_OPTIONS`` are ``BaseSink``'s, see ``streamll.url_options``)."""
_read = KafkaOptions.reader()


def _relevant(name: str, protocol: str) -> bool:
    """Whether environment variable option ``name`` matters under an explicit ``security_protocol``."""
    if name.startswith("sasl_"):
        return protocol.startswith("SASL_")
    if name.startswith("ssl_"):
        return protocol.endswith("SSL")
    return True


def _from_url(url: str, netloc: str, query: Mapping[str, str]) -> dict[str, Any]:
    """Brokers, the user part's SASL credentials and the query's options, converted."""
    hosts = parse_hosts(url, netloc.rpartition("@")[2], "kafka", DEFAULT_PORT)
    values: dict[str, Any] = {
        "bootstrap_servers": tuple(host_port(host, port) for host, port in hosts) or (f"localhost:{DEFAULT_PORT}",)
    }
    user, password = userinfo(netloc)
    if user:
        values["sasl_username"] = user
    if password:
        values.update(sasl_password=password, credential_source="url")
    for name, raw in query.items():
        key = "compression" if name == "compression_type" else name
        if key in values and name in ("sasl_username", "sasl_password"):
            raise ConfigurationError(f"kafka {name} is given both in the URL's user part and as ?{name}=")
        if key in values:
            raise ConfigurationError("give kafka compression either as compression= or compression_type=, not both")
        values[key] = _OPTIONS[name](name, raw)
        if name == "sasl_password":
            values["credential_source"] = "url"
    return values


def _from_environment(values: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Fill security options the URL left out from :data:`ENV_VARS` (only those the protocol uses)."""
    explicit = values.get("security_protocol")
    for name, variables in ENV_VARS.items():
        if name in values or (explicit is not None and not _relevant(name, explicit)):
            continue
        found = from_environment(variables, environ)
        if found is None:
            continue
        raw, variable = found
        values[name] = _ENV_CONVERTERS[name](variable, raw)
        if name == "sasl_password":
            values["credential_source"] = variable


def _security_protocol(values: dict[str, Any], scheme: str) -> None:
    """Derive ``security_protocol`` from the scheme, TLS files and SASL credentials unless it is given."""
    want_ssl = values.pop("ssl", None)
    if "security_protocol" not in values:
        tls = scheme == "kafka+ssl" or bool(want_ssl) or any(values.get(n) for n in ("ssl_cafile", "ssl_certfile"))
        sasl = bool(values.get("sasl_username") or values.get("sasl_password") or values.get("sasl_mechanism"))
        values["security_protocol"] = ("SASL_" if sasl else "") + ("SSL" if tls else "PLAINTEXT")
    elif scheme == "kafka+ssl" and not values["security_protocol"].endswith("SSL"):
        raise ConfigurationError(f"kafka+ssl:// contradicts security_protocol={values['security_protocol']}")
    if values["security_protocol"].startswith("SASL_") and "sasl_mechanism" not in values:
        values["sasl_mechanism"] = "PLAIN"


def parse_url(url: str, environ: Mapping[str, str] | None = None) -> KafkaOptions:
    """Parse a ``kafka://`` or ``kafka+ssl://`` URL; raises ConfigurationError naming the problem."""
    parts = split_url(url, "Kafka", example=f"{DEFAULT_URL}?topic={DEFAULT_TOPIC}")
    if parts.scheme not in SCHEMES:
        raise ConfigurationError(f"kafka URL must start with one of {', '.join(s + '://' for s in SCHEMES)}")
    if parts.path.strip("/"):
        raise ConfigurationError(f"kafka URL {mask_url(url)!r} has a path; name the topic with ?topic=NAME")
    query = _read.query(
        parts.query,
        KNOWN_OPTIONS,
        credentials_hint="the URL (kafka+ssl://user:password@host) or in "
        "STREAMLL_KAFKA_SASL_USERNAME / STREAMLL_KAFKA_SASL_PASSWORD",
    )
    sink_options = _read.sink_options(query)
    values = _from_url(url, parts.netloc, query)
    values["sink_options"] = sink_options
    _from_environment(values, os.environ if environ is None else environ)
    _security_protocol(values, parts.scheme)
    if values.get("compression"):
        check_compression(values["compression"])
    return KafkaOptions(**values)


parse_kafka_url = parse_url
"""The name this function had before every transport called it ``parse_url``."""


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
    "parse_url",
]
