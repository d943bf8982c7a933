"""Parsing ``nats://`` / ``tls://`` URLs into typed options.

::

    nats://[user:password@|token@]host[:port][,host2:port2...]?subject=SUBJ&stream=NAME&...

Credentials come from the URL or, when it has none, from the environment
(``STREAMLL_NATS_USER`` or ``NATS_USER``, and likewise ``PASSWORD``, ``TOKEN``,
``CREDS``, ``NKEY``, ``CA``, ``CERT``, ``KEY``: the ``NATS_*`` names are the ones
the ``nats`` CLI uses; see :data:`ENV_VARS`). They are never printed:
:attr:`NatsOptions.display_url` and ``repr`` hide them.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import Field
from streamll.errors import ConfigurationError
from streamll.url_options import (
    BOOLEAN,
    MASK,
    SECONDS,
    SINK_OPTIONS,
    TEXT,
    VERBATIM,
    OptionModel,
    UrlOptions,
    at_least,
    converted,
    display_url,
    env_names,
    from_environment,
    host_port,
    one_of,
    parse_hosts,
    split_url,
    userinfo,
)

DEFAULT_SUBJECT = "streamll.events"
DEFAULT_STREAM = "STREAMLL"
DEFAULT_PORT = 4222
SCHEMES = ("nats", "tls")

RETENTIONS = ("limits", "interest", "workqueue")
STORAGES = ("file", "memory")

_STREAM_NAME = re.compile(r"^[^\s.*>/\\]+$")
_SUBJECT_TOKEN = re.compile(r"^[^\s.]+$")

DEFAULT_EXECUTION_MAX_AGE = 86_400.0
"""Seconds a stream created with ``per_execution=true`` keeps messages, unless ``max_age`` says otherwise."""

ENV_VARS: dict[str, tuple[str, ...]] = {
    name: env_names("nats", name, native)
    for name, native in {
        "user": "NATS_USER",
        "password": "NATS_PASSWORD",
        "token": "NATS_TOKEN",
        "creds": "NATS_CREDS",
        "nkey": "NATS_NKEY",
        "tls_ca": "NATS_CA",
        "tls_cert": "NATS_CERT",
        "tls_key": "NATS_KEY",
    }.items()
}
"""Environment variables read for what the URL does not give, first match wins."""
_FILE_OPTIONS = ("creds", "nkey", "tls_ca", "tls_cert", "tls_key")


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


def _durable(name: str, raw: str) -> str | None:
    """A durable consumer name; empty means an ephemeral consumer."""
    return raw or None


class StreamSettings(OptionModel):
    """How the sink creates the stream when it does not exist (an existing stream is used as it is)."""

    transport: ClassVar[str] = "NATS"

    subjects: Annotated[tuple[str, ...], converted(_subjects)] = ()
    """Subjects the new stream captures; empty means just the publish subject."""
    retention: Annotated[str, one_of(RETENTIONS)] = "limits"
    storage: Annotated[str, one_of(STORAGES)] = "file"
    max_age: Annotated[float | None, SECONDS] = None
    """Seconds a message is kept (None: no limit)."""
    max_msgs: Annotated[int | None, at_least(1)] = None
    max_bytes: Annotated[int | None, at_least(1)] = None
    replicas: Annotated[int, at_least(1)] = 1
    duplicate_window: Annotated[float, SECONDS] = 120.0
    """Seconds within which a repeated ``Nats-Msg-Id`` is discarded by the server."""
    create: Annotated[bool, BOOLEAN] = True
    """Create the stream when it is missing (False: fail with a clear error instead)."""


class ConsumerSettings(OptionModel):
    """Consumer options a URL may carry; given ones go to :attr:`NatsOptions.consumer_options`."""

    transport: ClassVar[str] = "NATS"

    durable: Annotated[str | None, converted(_durable)] = None
    from_beginning: Annotated[bool | None, BOOLEAN] = None
    ack_wait: Annotated[float | None, SECONDS] = None
    fetch_batch: Annotated[int | None, at_least(1)] = None
    inactive_threshold: Annotated[float | None, SECONDS] = None


class NatsOptions(UrlOptions):
    """Everything a ``nats://`` URL says: servers, auth, TLS, destination, stream settings."""

    transport: ClassVar[str] = "NATS"

    servers: tuple[str, ...] = (f"nats://127.0.0.1:{DEFAULT_PORT}",)
    """Server URLs without credentials."""
    subject: Annotated[str, converted(lambda name, raw: validate_subject(raw, name))] = DEFAULT_SUBJECT
    stream: Annotated[str, converted(lambda name, raw: validate_stream_name(raw))] = DEFAULT_STREAM
    stream_settings: StreamSettings = Field(default_factory=StreamSettings)
    user: str | None = None
    password: str | None = Field(default=None, repr=False)
    token: str | None = Field(default=None, repr=False)
    creds: Annotated[str | None, TEXT] = None
    """Path of a ``.creds`` file (user JWT + NKey seed)."""
    nkey: Annotated[str | None, TEXT] = None
    """Path of an NKey seed file."""
    tls: bool = False
    tls_ca: Annotated[str | None, TEXT] = None
    tls_cert: Annotated[str | None, TEXT] = None
    tls_key: Annotated[str | None, TEXT] = None
    tls_hostname: Annotated[str | None, TEXT] = None
    client_name: Annotated[str | None, VERBATIM] = None
    connect_timeout: Annotated[float, SECONDS] = 2.0
    ack_timeout: Annotated[float, SECONDS] = 10.0
    """Seconds the sink waits for the JetStream acks of one batch before retrying it."""
    max_in_flight: Annotated[int, at_least(1)] = 4000
    """Publishes awaiting their JetStream ack at once."""
    per_execution: Annotated[bool, BOOLEAN] = False
    """Publish each event on ``<subject>.<execution_id>`` (the web relay reads one execution by its subject)."""
    sink_options: dict[str, Any] = Field(default_factory=dict)
    """BaseSink options from the URL (batch_size, buffer_size, linger, overflow, ...)."""
    consumer_options: dict[str, Any] = Field(default_factory=dict)
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

    @property
    def display_url(self) -> str:
        """The servers, subject and stream, with every credential replaced by ``***``."""
        hosts = ",".join(server.split("://", 1)[-1] for server in self.servers)
        return display_url(
            "tls" if self.tls else "nats",
            hosts,
            user=self.user,
            secret=self.user is not None and self.password is not None,
            token=self.user is None and self.token is not None,
            query={"subject": self.subject, "stream": self.stream},
        )

    def masked_url(self) -> str:
        """:attr:`display_url` (the name this had before every transport called it ``display_url``)."""
        return self.display_url

    def with_destination(self, *, subject: str | None = None, stream: str | None = None) -> NatsOptions:
        """A copy with another subject and/or stream (validated)."""
        changes: dict[str, Any] = {}
        if subject is not None:
            changes["subject"] = validate_subject(subject)
        if stream is not None:
            changes["stream"] = validate_stream_name(stream)
        return self.replace(**changes) if changes else self

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


_CLIENT = NatsOptions.query_options()
_STREAM = StreamSettings.query_options()
_CONSUMER = ConsumerSettings.query_options()
KNOWN_OPTIONS = frozenset({*SINK_OPTIONS, "name", "token", *_STREAM, *_CONSUMER, *_CLIENT})
"""Every query option a NATS URL accepts (``SINK_OPTIONS`` are ``BaseSink``'s, see ``streamll.url_options``)."""
_read = NatsOptions.reader()


def _servers(url: str, hosts: str, secure: bool) -> tuple[str, ...]:
    """``h1:4222,h2`` -> server URLs (``nats://`` or ``tls://``)."""
    found = parse_hosts(url, hosts, "NATS", DEFAULT_PORT)
    if not found:
        raise ConfigurationError("NATS URL needs a host, e.g. nats://127.0.0.1:4222")
    scheme = "tls" if secure else "nats"
    return tuple(f"{scheme}://{host_port(host, port)}" for host, port in found)


def _auth(netloc: str, token: str | None, environ: Mapping[str, str]) -> dict[str, Any]:
    """User and password, or a token: from the URL (``token@host`` or ``?token=``), else the environment."""
    user, password = userinfo(netloc)
    if user is not None and password is None:
        if token is not None:
            raise ConfigurationError("NATS URL gives a token both before '@' and in ?token=")
        token, user = user, None
    if user is None and token is None:
        user = _env("user", environ)
        password = _env("password", environ)
        token = _env("token", environ) if user is None else None
    return {"user": user, "password": password, "token": token}


def _env(name: str, environ: Mapping[str, str]) -> str | None:
    """The value of option ``name`` from :data:`ENV_VARS`, or None."""
    found = from_environment(ENV_VARS[name], environ)
    return found[0] if found else None


def _files(options: dict[str, Any], secure: bool, environ: Mapping[str, str]) -> None:
    """Fill credential and TLS file paths from the environment, then check they exist and go together."""
    for key in _FILE_OPTIONS:
        wanted = key not in options and (secure or not key.startswith("tls_"))
        if wanted and (value := _env(key, environ)) is not None:
            options[key] = value
    if options.get("creds") and options.get("nkey"):
        raise ConfigurationError("give either creds= (credentials file) or nkey= (seed file), not both")
    if options.get("tls_key") and not options.get("tls_cert"):
        raise ConfigurationError("tls_key= needs tls_cert= (the client certificate it belongs to)")
    for key in _FILE_OPTIONS:
        path = options.get(key)
        if path and not os.path.isfile(path):
            raise ConfigurationError(f"{key}={path!r}: no such file")


def _convert(table: Mapping[str, Any], query: Mapping[str, str]) -> dict[str, Any]:
    """The options of ``table`` that ``query`` gives, converted."""
    return {key: table[key](key, value) for key, value in query.items() if key in table}


def parse_url(url: str, environ: Mapping[str, str] | None = None) -> NatsOptions:
    """Options for ``url``; raises :class:`~streamll.errors.ConfigurationError` on anything wrong.

    Error messages never contain the URL's credentials.
    """
    parts = split_url(url, "NATS", example=f"nats://127.0.0.1:{DEFAULT_PORT}?subject={DEFAULT_SUBJECT}")
    if parts.scheme not in SCHEMES:
        raise ConfigurationError(f"NATS URL scheme must be nats:// or tls://, not {parts.scheme}://")
    if parts.path not in ("", "/"):
        raise ConfigurationError(
            f"NATS URLs take no path ({parts.path!r}); put the subject in ?subject=... and the stream in ?stream=..."
        )
    query = _read.query(
        parts.query,
        KNOWN_OPTIONS,
        credentials_hint="the URL (nats://user:password@host or nats://token@host) or in NATS_USER / NATS_PASSWORD",
    )
    environ = os.environ if environ is None else environ
    sink_options = _read.sink_options(query)
    if "name" in query:
        sink_options["name"] = query.pop("name")
    secure = parts.scheme == "tls" or any(key in query for key in ("tls_ca", "tls_cert", "tls_key"))
    servers = _servers(url, parts.netloc.rpartition("@")[2], secure)
    auth = _auth(parts.netloc, query.pop("token", None), environ)
    stream_settings = _convert(_STREAM, query)
    options = _convert(_CLIENT, query)
    _files(options, secure, environ)
    if options.get("per_execution") and "max_age" not in stream_settings:
        stream_settings["max_age"] = DEFAULT_EXECUTION_MAX_AGE
    return NatsOptions(
        servers=servers,
        tls=secure,
        stream_settings=StreamSettings(**stream_settings),
        sink_options=sink_options,
        consumer_options=_convert(_CONSUMER, query),
        **auth,
        **options,
    )


__all__ = [
    "DEFAULT_STREAM",
    "DEFAULT_SUBJECT",
    "ENV_VARS",
    "KNOWN_OPTIONS",
    "MASK",
    "ConsumerSettings",
    "NatsOptions",
    "StreamSettings",
    "parse_url",
    "subject_matches",
    "validate_stream_name",
    "validate_subject",
]
