"""Parsing ``nats://`` / ``tls://`` URLs into typed options.

::

    nats://[user:password@|token@]host[:port][,host2:port2...]?subject=SUBJ&stream=NAME&...

Credentials come from the URL or, when it has none, from the environment
(``NATS_USER`` / ``NATS_PASSWORD``, ``NATS_TOKEN``, ``NATS_CREDS``,
``NATS_NKEY``, ``NATS_CA`` / ``NATS_CERT`` / ``NATS_KEY``, the names the
``nats`` CLI uses). They are never printed: :meth:`NatsOptions.masked_url` and
``repr`` hide them.
"""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, unquote

from streamll.errors import ConfigurationError
from streamll.url_options import SINK_OPTIONS, Converter, OptionReader, split_url

DEFAULT_SUBJECT = "streamll.events"
DEFAULT_STREAM = "STREAMLL"
DEFAULT_PORT = 4222
SCHEMES = ("nats", "tls")

RETENTIONS = ("limits", "interest", "workqueue")
STORAGES = ("file", "memory")

_STREAM_NAME = re.compile(r"^[^\s.*>/\\]+$")
_SUBJECT_TOKEN = re.compile(r"^[^\s.]+$")

MASK = "***"
DEFAULT_EXECUTION_MAX_AGE = 86_400.0
"""Seconds a stream created with ``per_execution=true`` keeps messages, unless ``max_age`` says otherwise."""


_read = OptionReader("NATS")


def parse_duration(value: str, option: str) -> float:
    """Seconds from ``"30"``, ``"0.5"``, ``"500ms"``, ``"30s"``, ``"5m"``, ``"2h"`` or ``"7d"``."""
    return _read.seconds(option, value)


def validate_subject(subject: str, option: str = "subject", *, wildcards: bool = False) -> str:
    """Check a NATS subject (``a.b.c``; ``*`` and ``>`` only where ``wildcards`` is allowed)."""
    tokens = subject.split(".")
    if not subject or any(not _SUBJECT_TOKEN.match(token) for token in tokens):
        raise ConfigurationError(f"{option}={subject!r} is not a valid NATS subject (dot-separated, no spaces)")
    if not wildcards and any(token in ("*", ">") for token in tokens):
        raise ConfigurationError(f"{option}={subject!r}: wildcards are not allowed in a publish subject")
    if ">" in tokens[:-1]:
        raise ConfigurationError(f"{option}={subject!r}: '>' may only be the last token")
    return subject


def validate_stream_name(name: str) -> str:
    """Check a JetStream stream name (no spaces, dots, wildcards or slashes)."""
    if not _STREAM_NAME.match(name):
        raise ConfigurationError(
            f"stream={name!r} is not a valid JetStream stream name (no spaces, '.', '*', '>', '/')"
        )
    return name


def subject_matches(pattern: str, subject: str) -> bool:
    """True when the stream subject ``pattern`` (with ``*`` / ``>``) captures ``subject``."""
    wanted = pattern.split(".")
    tokens = subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > index
        if index >= len(tokens) or (token != "*" and token != tokens[index]):
            return False
    return len(tokens) == len(wanted)


def _subjects(name: str, raw: str) -> tuple[str, ...]:
    subjects = tuple(subject.strip() for subject in raw.split(",") if subject.strip())
    if not subjects:
        raise ConfigurationError(f"{name}= needs at least one subject")
    return tuple(validate_subject(subject, name, wildcards=True) for subject in subjects)


def _verbatim(name: str, raw: str) -> str:
    return raw


def _durable(name: str, raw: str) -> str | None:
    return raw or None


_STREAM_OPTIONS: dict[str, Converter[Any]] = {
    "subjects": _subjects,
    "retention": _read.choice(RETENTIONS),
    "storage": _read.choice(STORAGES),
    "max_age": _read.seconds,
    "max_msgs": _read.at_least(1),
    "max_bytes": _read.at_least(1),
    "replicas": _read.at_least(1),
    "duplicate_window": _read.seconds,
    "create": _read.boolean,
}
"""Options that become :class:`StreamSettings` fields (used when the sink creates the stream)."""

_CONSUMER_OPTIONS: dict[str, Converter[Any]] = {
    "durable": _durable,
    "from_beginning": _read.boolean,
    "ack_wait": _read.seconds,
    "fetch_batch": _read.at_least(1),
    "inactive_threshold": _read.seconds,
}
"""Options that go to :attr:`NatsOptions.consumer_options`."""

_CLIENT_OPTIONS: dict[str, Converter[Any]] = {
    "subject": lambda name, raw: validate_subject(raw, name),
    "stream": lambda name, raw: validate_stream_name(raw),
    "creds": _read.text,
    "nkey": _read.text,
    "tls_ca": _read.text,
    "tls_cert": _read.text,
    "tls_key": _read.text,
    "tls_hostname": _read.text,
    "client_name": _verbatim,
    "connect_timeout": _read.seconds,
    "ack_timeout": _read.seconds,
    "max_in_flight": _read.at_least(1),
    "per_execution": _read.boolean,
}
"""Options that become :class:`NatsOptions` fields (``token`` is read with the URL's credentials)."""

KNOWN_OPTIONS = frozenset({*SINK_OPTIONS, "name", "token", *_STREAM_OPTIONS, *_CONSUMER_OPTIONS, *_CLIENT_OPTIONS})
"""Every query option a NATS URL accepts (``SINK_OPTIONS`` are ``BaseSink``'s, see ``streamll.url_options``)."""


@dataclass(frozen=True)
class StreamSettings:
    """How the sink creates the stream when it does not exist (an existing stream is used as it is)."""

    subjects: tuple[str, ...] = ()
    """Subjects the new stream captures; empty means just the publish subject."""
    retention: str = "limits"
    storage: str = "file"
    max_age: float | None = None
    """Seconds a message is kept (None: no limit)."""
    max_msgs: int | None = None
    max_bytes: int | None = None
    replicas: int = 1
    duplicate_window: float = 120.0
    """Seconds within which a repeated ``Nats-Msg-Id`` is discarded by the server."""
    create: bool = True
    """Create the stream when it is missing (False: fail with a clear error instead)."""


@dataclass(frozen=True)
class NatsOptions:
    """Everything a ``nats://`` URL says: servers, auth, TLS, destination, stream settings."""

    servers: tuple[str, ...] = (f"nats://127.0.0.1:{DEFAULT_PORT}",)
    """Server URLs without credentials."""
    subject: str = DEFAULT_SUBJECT
    stream: str = DEFAULT_STREAM
    stream_settings: StreamSettings = field(default_factory=StreamSettings)
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    creds: str | None = None
    """Path of a ``.creds`` file (user JWT + NKey seed)."""
    nkey: str | None = None
    """Path of an NKey seed file."""
    tls: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_hostname: str | None = None
    client_name: str | None = None
    connect_timeout: float = 2.0
    ack_timeout: float = 10.0
    """Seconds the sink waits for the JetStream acks of one batch before retrying it."""
    max_in_flight: int = 4000
    """Publishes awaiting their JetStream ack at once."""
    per_execution: bool = False
    """Publish each event on ``<subject>.<execution_id>`` (the web relay reads one execution by its subject)."""
    sink_options: dict[str, Any] = field(default_factory=dict)
    """BaseSink options from the URL (batch_size, buffer_size, linger, overflow, ...)."""
    consumer_options: dict[str, Any] = field(default_factory=dict)
    """Consumer options from the URL (durable, from_beginning, ack_wait, ...)."""

    @property
    def stream_subjects(self) -> list[str]:
        """Subjects a newly created stream captures (with ``per_execution``, also ``<subject>.>``)."""
        default = (self.subject, f"{self.subject}.>") if self.per_execution else (self.subject,)
        return list(self.stream_settings.subjects or default)

    def publish_subject(self, execution_id: str) -> str:
        """Where an event of ``execution_id`` is published: ``<subject>.<execution_id>`` with ``per_execution``."""
        if self.per_execution and execution_id and _SUBJECT_TOKEN.match(execution_id) and execution_id not in "*>":
            return f"{self.subject}.{execution_id}"
        return self.subject

    @property
    def read_subject(self) -> str:
        """What a consumer of every event reads: ``<subject>`` or, with ``per_execution``, ``<subject>.>``."""
        return f"{self.subject}.>" if self.per_execution else self.subject

    def masked_url(self) -> str:
        """The servers, subject and stream, with every credential replaced by ``***``."""
        auth = ""
        if self.user is not None:
            auth = f"{quote(self.user, safe='')}:{MASK}@" if self.password is not None else f"{quote(self.user)}@"
        elif self.token is not None:
            auth = f"{MASK}@"
        hosts = ",".join(server.split("://", 1)[-1] for server in self.servers)
        scheme = "tls" if self.tls else "nats"
        return f"{scheme}://{auth}{hosts}?subject={self.subject}&stream={self.stream}"

    def with_destination(self, *, subject: str | None = None, stream: str | None = None) -> NatsOptions:
        """A copy with another subject and/or stream (validated)."""
        changes: dict[str, Any] = {}
        if subject is not None:
            changes["subject"] = validate_subject(subject)
        if stream is not None:
            changes["stream"] = validate_stream_name(stream)
        return replace(self, **changes) if changes else self

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for ``tls://`` or any ``tls_*`` option (None: plain TCP)."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.tls_ca)
        if self.tls_cert:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        return context

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``nats.connect`` (auth, TLS, timeouts)."""
        kwargs: dict[str, Any] = {"servers": list(self.servers), "connect_timeout": self.connect_timeout}
        if self.client_name:
            kwargs["name"] = self.client_name
        if self.user is not None:
            kwargs["user"] = self.user
            kwargs["password"] = self.password or ""
        if self.token is not None:
            kwargs["token"] = self.token
        if self.creds:
            kwargs["user_credentials"] = self.creds
        if self.nkey:
            kwargs["nkeys_seed"] = self.nkey
        context = self.ssl_context()
        if context is not None:
            kwargs["tls"] = context
            if self.tls_hostname:
                kwargs["tls_hostname"] = self.tls_hostname
        return kwargs

    def __repr__(self) -> str:
        return f"NatsOptions({self.masked_url()!r})"


def _servers(netloc: str, secure: bool) -> tuple[tuple[str, ...], str | None, str | None]:
    """``user:pass@h1:4222,h2`` -> (server URLs, user-or-token, password)."""
    userinfo, _, hosts = netloc.rpartition("@")
    if not hosts:
        raise ConfigurationError("NATS URL needs a host, e.g. nats://127.0.0.1:4222")
    scheme = "tls" if secure else "nats"
    servers = []
    for host in hosts.split(","):
        host = host.strip()
        if not host:
            raise ConfigurationError("NATS URL has an empty host in its server list")
        name, colon, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if not colon:
            name, port = host, str(DEFAULT_PORT)
        if not name:
            raise ConfigurationError(f"NATS URL host {host!r} has no name")
        if not port.isdigit():
            raise ConfigurationError(f"NATS URL port {port!r} is not an integer")
        number = int(port)
        if not 0 < number < 65536:
            raise ConfigurationError(f"NATS URL port {number} is out of range (1-65535)")
        servers.append(f"{scheme}://{name}:{number}")
    user: str | None = None
    password: str | None = None
    if userinfo:
        name, colon, secret = userinfo.partition(":")
        user = unquote(name)
        password = unquote(secret) if colon else None
    return tuple(servers), user, password


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def parse_url(url: str) -> NatsOptions:
    """Options for ``url``; raises :class:`~streamll.errors.ConfigurationError` on anything wrong.

    Error messages never contain the URL's credentials.
    """
    parts = split_url(url, "NATS", example=f"nats://127.0.0.1:{DEFAULT_PORT}?subject={DEFAULT_SUBJECT}")
    scheme = parts.scheme
    if scheme not in SCHEMES:
        raise ConfigurationError(f"NATS URL scheme must be nats:// or tls://, not {scheme}://")
    if parts.path not in ("", "/"):
        raise ConfigurationError(
            f"NATS URLs take no path ({parts.path!r}); put the subject in ?subject=... and the stream in ?stream=..."
        )
    query = _read.query(
        parts.query,
        KNOWN_OPTIONS,
        credentials_hint="the URL (nats://user:password@host or nats://token@host) or in NATS_USER / NATS_PASSWORD",
    )
    sink_options = _read.sink_options(query)
    if "name" in query:
        sink_options["name"] = query.pop("name")

    secure = scheme == "tls" or any(key in query for key in ("tls_ca", "tls_cert", "tls_key"))
    servers, user, password = _servers(parts.netloc, secure)
    token: str | None = query.pop("token", None)
    if user is not None and password is None:
        if token is not None:
            raise ConfigurationError("NATS URL gives a token both before '@' and in ?token=")
        token, user = user, None
    if user is None and token is None:
        user, password = _env("NATS_USER"), _env("NATS_PASSWORD")
        token = _env("NATS_TOKEN") if user is None else None

    stream_settings = {key: _STREAM_OPTIONS[key](key, value) for key, value in query.items() if key in _STREAM_OPTIONS}
    consumer_options = {
        key: _CONSUMER_OPTIONS[key](key, value) for key, value in query.items() if key in _CONSUMER_OPTIONS
    }
    options = {key: _CLIENT_OPTIONS[key](key, value) for key, value in query.items() if key in _CLIENT_OPTIONS}

    if "creds" not in options and _env("NATS_CREDS"):
        options["creds"] = _env("NATS_CREDS")
    if "nkey" not in options and _env("NATS_NKEY"):
        options["nkey"] = _env("NATS_NKEY")
    if options.get("creds") and options.get("nkey"):
        raise ConfigurationError("give either creds= (credentials file) or nkey= (seed file), not both")
    for key, env in (("tls_ca", "NATS_CA"), ("tls_cert", "NATS_CERT"), ("tls_key", "NATS_KEY")):
        if key not in options and secure and _env(env):
            options[key] = _env(env)
    if options.get("tls_key") and not options.get("tls_cert"):
        raise ConfigurationError("tls_key= needs tls_cert= (the client certificate it belongs to)")
    for key in ("creds", "nkey", "tls_ca", "tls_cert", "tls_key"):
        path = options.get(key)
        if path and not os.path.isfile(path):
            raise ConfigurationError(f"{key}={path!r}: no such file")

    if options.get("per_execution") and "max_age" not in stream_settings:
        stream_settings["max_age"] = DEFAULT_EXECUTION_MAX_AGE
    return NatsOptions(
        servers=servers,
        user=user,
        password=password,
        token=token,
        tls=secure,
        stream_settings=StreamSettings(**stream_settings),
        sink_options=sink_options,
        consumer_options=consumer_options,
        **options,
    )


__all__ = [
    "DEFAULT_STREAM",
    "DEFAULT_SUBJECT",
    "KNOWN_OPTIONS",
    "NatsOptions",
    "StreamSettings",
    "parse_duration",
    "parse_url",
    "subject_matches",
    "validate_stream_name",
    "validate_subject",
]
