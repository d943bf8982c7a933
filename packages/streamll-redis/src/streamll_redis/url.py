"""Redis URLs into a typed :class:`RedisOptions`.

Forms (the query string carries the streamll options)::

    redis://[[user]:password@]host[:port][/db]?stream=KEY&maxlen=N
    rediss://...?ssl_ca_certs=/ca.pem&ssl_certfile=/client.pem&ssl_keyfile=/client.key
    unix:///path/to/redis.sock?db=0&stream=KEY

The password comes from the URL or, when the URL has none, from
``STREAMLL_REDIS_PASSWORD`` or ``REDIS_PASSWORD``. It is never part of a repr,
a log line or an error message: :attr:`RedisOptions.display_url` and
:func:`mask_url` show ``***`` in its place.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from streamll.errors import ConfigurationError
from streamll.url_options import SINK_OPTIONS, Converter, OptionReader, mask_url, split_url

SCHEMES = ("redis", "rediss", "unix")
"""URL schemes this plugin serves (``rediss`` is Redis over TLS, ``unix`` a local socket)."""
DEFAULT_URL = "redis://localhost:6379/0"
DEFAULT_PORT = 6379
DEFAULT_STREAM = "streamll"
DEFAULT_EXECUTION_TTL = 86_400.0
"""Seconds a finished execution's own stream key is kept (``?per_execution=true``)."""
DEFAULT_MAXLEN = 100_000
"""Approximate cap on the stream's length, so an unattended stream cannot fill Redis' memory (``maxlen=0``: none)."""
PASSWORD_ENV_VARS = ("STREAMLL_REDIS_PASSWORD", "REDIS_PASSWORD")
"""Where the password comes from when the URL has none, first match wins."""
CERT_REQS = ("none", "optional", "required")

_read = OptionReader("redis")

_CONNECTION_OPTIONS: dict[str, Converter[Any]] = {
    "db": _read.at_least(0),
    "stream": _read.text,
    "maxlen": _read.at_least(0),
    "approximate": _read.boolean,
    "socket_timeout": _read.seconds,
    "socket_connect_timeout": _read.seconds,
    "client_name": _read.text,
    "group": _read.text,
    "consumer": _read.text,
    "from_beginning": _read.boolean,
    "count": _read.at_least(1),
    "per_execution": _read.boolean,
    "execution_ttl": _read.seconds,
}
"""Options that become :class:`RedisOptions` fields."""

_TLS_OPTIONS: dict[str, Converter[Any]] = {
    "ssl_ca_certs": _read.text,
    "ssl_ca_path": _read.text,
    "ssl_certfile": _read.text,
    "ssl_keyfile": _read.text,
    "ssl_cert_reqs": _read.choice(CERT_REQS),
    "ssl_check_hostname": _read.boolean,
}
"""TLS options, only valid with ``rediss://``."""

KNOWN_OPTIONS = tuple(sorted({*_CONNECTION_OPTIONS, *_TLS_OPTIONS, *SINK_OPTIONS}))
"""Every query option a Redis URL accepts (``SINK_OPTIONS`` are ``BaseSink``'s, see ``streamll.url_options``)."""


@dataclass(frozen=True)
class RedisOptions:
    """Everything a Redis URL says: where to connect, which stream, and how to write / read it."""

    scheme: str = "redis"
    host: str = "localhost"
    port: int = DEFAULT_PORT
    unix_socket_path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_source: str | None = None
    """``"url"``, the environment variable's name, or ``None`` (no password): says where, never what."""
    stream: str = DEFAULT_STREAM
    maxlen: int = DEFAULT_MAXLEN
    """``XADD ... MAXLEN ~ maxlen`` on every write; 0 turns trimming off."""
    approximate: bool = True
    """Trim with ``~`` (cheap, keeps a little more than ``maxlen``) instead of exactly."""
    per_execution: bool = False
    """Also append each event to the execution's own key ``<stream>:exec:<execution_id>`` (the web relay reads it)."""
    execution_ttl: float = DEFAULT_EXECUTION_TTL
    """Seconds an execution's own key lives after its last event (renewed on every write)."""
    ssl_ca_certs: str | None = None
    ssl_ca_path: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_cert_reqs: str = "required"
    ssl_check_hostname: bool | None = None
    """``None``: check the host name whenever certificates are required."""
    socket_timeout: float = 5.0
    socket_connect_timeout: float = 5.0
    client_name: str | None = None
    group: str | None = None
    consumer: str | None = None
    from_beginning: bool | None = None
    count: int | None = None
    sink_options: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=True)
    """``BaseSink`` keyword options found in the query (buffer_size, overflow, ...)."""

    def __post_init__(self) -> None:
        if not self.stream:
            raise ConfigurationError("redis stream key must not be empty")
        if self.maxlen < 0:
            raise ConfigurationError(f"redis maxlen must be >= 0 (0 turns trimming off), got {self.maxlen}")
        if self.execution_ttl < 1:
            raise ConfigurationError(f"redis execution_ttl must be at least 1 second, got {self.execution_ttl:g}")
        if self.ssl_cert_reqs not in CERT_REQS:
            raise ConfigurationError(f"ssl_cert_reqs must be one of {', '.join(CERT_REQS)}, got {self.ssl_cert_reqs!r}")

    @property
    def tls(self) -> bool:
        """True for ``rediss://``."""
        return self.scheme == "rediss"

    @property
    def location(self) -> str:
        """``host:port`` or the socket path."""
        if self.unix_socket_path is not None:
            return self.unix_socket_path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def display_url(self) -> str:
        """The URL with the password masked: safe for reprs and logs."""
        userinfo = ""
        if self.username or self.password:
            userinfo = quote(self.username or "", safe="")
            if self.password:
                userinfo += ":***"
            userinfo += "@"
        if self.unix_socket_path is not None:
            return f"unix://{userinfo}{self.unix_socket_path}?db={self.db}&stream={quote(self.stream, safe='')}"
        return f"{self.scheme}://{userinfo}{self.location}/{self.db}?stream={quote(self.stream, safe='')}"

    def replace(self, **changes: Any) -> RedisOptions:
        """A copy with ``changes`` applied and validated."""
        return dataclasses.replace(self, **changes)

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.asyncio.Redis`` (connection and TLS settings only)."""
        kwargs: dict[str, Any] = {
            "db": self.db,
            "username": self.username,
            "password": self.password,
            "socket_timeout": self.socket_timeout or None,
            "socket_connect_timeout": self.socket_connect_timeout or None,
            "client_name": self.client_name,
        }
        if self.unix_socket_path is not None:
            kwargs["unix_socket_path"] = self.unix_socket_path
        else:
            kwargs["host"] = self.host
            kwargs["port"] = self.port
        if self.tls:
            check_hostname = self.ssl_check_hostname
            if check_hostname is None:
                check_hostname = self.ssl_cert_reqs == "required"
            kwargs.update(
                ssl=True,
                ssl_ca_certs=self.ssl_ca_certs,
                ssl_ca_path=self.ssl_ca_path,
                ssl_certfile=self.ssl_certfile,
                ssl_keyfile=self.ssl_keyfile,
                ssl_cert_reqs=self.ssl_cert_reqs,
                ssl_check_hostname=check_hostname,
            )
        return kwargs

    def __repr__(self) -> str:
        return f"RedisOptions({self.display_url!r})"


def _credentials(netloc: str, environ: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    """(username, password, where the password came from)."""
    username = password = source = None
    if "@" in netloc:
        userinfo = netloc.rpartition("@")[0]
        user, has_password, secret = userinfo.partition(":")
        username = unquote(user) or None
        if has_password and secret:
            password, source = unquote(secret), "url"
    if password is None:
        for name in PASSWORD_ENV_VARS:
            if environ.get(name):
                password, source = environ[name], name
                break
    return username, password, source


def parse_redis_url(url: str, environ: Mapping[str, str] | None = None) -> RedisOptions:
    """Parse a ``redis://``, ``rediss://`` or ``unix://`` URL; raises ConfigurationError naming the problem."""
    parts = split_url(url, "Redis", example=DEFAULT_URL)
    scheme = parts.scheme
    if scheme not in SCHEMES:
        raise ConfigurationError(f"redis URL must start with one of {', '.join(s + '://' for s in SCHEMES)}")
    environ = os.environ if environ is None else environ
    query = _read.query(
        parts.query,
        KNOWN_OPTIONS,
        credentials_hint=f"the URL (redis://user:password@host) or in ${PASSWORD_ENV_VARS[0]}",
    )
    sink_options = _read.sink_options(query)
    username, password, source = _credentials(parts.netloc, environ)
    values: dict[str, Any] = {"scheme": scheme, "username": username, "password": password, "password_source": source}

    hostport = parts.netloc.rpartition("@")[2]
    if scheme == "unix":
        path = unquote(parts.path)
        if hostport or not path:
            raise ConfigurationError("a unix:// URL names a socket path: unix:///path/to/redis.sock")
        values["unix_socket_path"] = path
    else:
        try:
            port = parts.port
        except ValueError:
            raise ConfigurationError(f"redis URL {mask_url(url)!r} has an invalid port") from None
        values["host"] = unquote(parts.hostname or "") or "localhost"
        values["port"] = port or DEFAULT_PORT
        db_path = unquote(parts.path).strip("/")
        if db_path:
            if "db" in query:
                raise ConfigurationError("give the redis database either in the path (/1) or as ?db=1, not both")
            values["db"] = _read.integer("db (the URL path)", db_path, 0)

    for name, raw in query.items():
        if name in _TLS_OPTIONS:
            if scheme != "rediss":
                raise ConfigurationError(f"redis URL option {name!r} needs a rediss:// (TLS) URL")
            values[name] = _TLS_OPTIONS[name](name, raw)
        else:
            values[name] = _CONNECTION_OPTIONS[name](name, raw)
    values["sink_options"] = sink_options
    return RedisOptions(**values)


__all__ = [
    "DEFAULT_EXECUTION_TTL",
    "DEFAULT_MAXLEN",
    "DEFAULT_STREAM",
    "DEFAULT_URL",
    "KNOWN_OPTIONS",
    "PASSWORD_ENV_VARS",
    "SCHEMES",
    "SINK_OPTIONS",
    "RedisOptions",
    "mask_url",
    "parse_redis_url",
]
