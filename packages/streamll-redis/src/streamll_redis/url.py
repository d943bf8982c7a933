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

import os
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar
from urllib.parse import unquote

from pydantic import Field, model_validator
from streamll.errors import ConfigurationError
from streamll.url_options import (
    BOOLEAN,
    SECONDS,
    SINK_OPTIONS,
    TEXT,
    UrlOptions,
    at_least,
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

SCHEMES = ("redis", "rediss", "unix")
"""URL schemes this plugin serves (``rediss`` is Redis over TLS, ``unix`` a local socket)."""
DEFAULT_URL = "redis://localhost:6379/0"
DEFAULT_PORT = 6379
DEFAULT_STREAM = "streamll"
DEFAULT_EXECUTION_TTL = 86_400.0
"""Seconds a finished execution's own stream key is kept (``?per_execution=true``)."""
DEFAULT_MAXLEN = 100_000
"""Approximate cap on the stream's length, so an unattended stream cannot fill Redis' memory (``maxlen=0``: none)."""
PASSWORD_ENV_VARS = env_names("redis", "password", "REDIS_PASSWORD")
"""Where the password comes from when the URL has none, first match wins."""
CERT_REQS = ("none", "optional", "required")
TLS_OPTIONS = ("ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")
"""Query options only valid with ``rediss://``."""


class RedisOptions(UrlOptions):
    """Everything a Redis URL says: where to connect, which stream, and how to write / read it."""

    transport: ClassVar[str] = "redis"

    scheme: str = "redis"
    host: str = "localhost"
    port: int = DEFAULT_PORT
    unix_socket_path: str | None = None
    db: Annotated[int, at_least(0)] = 0
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    password_source: str | None = None
    """``"url"``, the environment variable's name, or ``None`` (no password): says where, never what."""
    stream: Annotated[str, TEXT] = DEFAULT_STREAM
    maxlen: Annotated[int, at_least(0)] = DEFAULT_MAXLEN
    """``XADD ... MAXLEN ~ maxlen`` on every write; 0 turns trimming off."""
    approximate: Annotated[bool, BOOLEAN] = True
    """Trim with ``~`` (cheap, keeps a little more than ``maxlen``) instead of exactly."""
    per_execution: Annotated[bool, BOOLEAN] = False
    """Also append each event to the execution's own key ``<stream>:exec:<execution_id>`` (the web relay reads it)."""
    execution_ttl: Annotated[float, SECONDS] = DEFAULT_EXECUTION_TTL
    """Seconds an execution's own key lives after its last event (renewed on every write)."""
    ssl_ca_certs: Annotated[str | None, TEXT] = None
    ssl_ca_path: Annotated[str | None, TEXT] = None
    ssl_certfile: Annotated[str | None, TEXT] = None
    ssl_keyfile: Annotated[str | None, TEXT] = None
    ssl_cert_reqs: Annotated[str, one_of(CERT_REQS)] = "required"
    ssl_check_hostname: Annotated[bool | None, BOOLEAN] = None
    """``None``: check the host name whenever certificates are required."""
    socket_timeout: Annotated[float, SECONDS] = 5.0
    socket_connect_timeout: Annotated[float, SECONDS] = 5.0
    client_name: Annotated[str | None, TEXT] = None
    group: Annotated[str | None, TEXT] = None
    consumer: Annotated[str | None, TEXT] = None
    from_beginning: Annotated[bool | None, BOOLEAN] = None
    count: Annotated[int | None, at_least(1)] = None
    sink_options: dict[str, Any] = Field(default_factory=dict)
    """``BaseSink`` keyword options found in the query (buffer_size, overflow, ...)."""

    @model_validator(mode="after")
    def _check(self) -> RedisOptions:
        """The stream, trimming, key lifetime and certificate policy make sense."""
        if not self.stream:
            raise ConfigurationError("redis stream key must not be empty")
        if self.maxlen < 0:
            raise ConfigurationError(f"redis maxlen must be >= 0 (0 turns trimming off), got {self.maxlen}")
        if self.execution_ttl < 1:
            raise ConfigurationError(f"redis execution_ttl must be at least 1 second, got {self.execution_ttl:g}")
        if self.ssl_cert_reqs not in CERT_REQS:
            raise ConfigurationError(f"ssl_cert_reqs must be one of {', '.join(CERT_REQS)}, got {self.ssl_cert_reqs!r}")
        return self

    @property
    def tls(self) -> bool:
        """True for ``rediss://``."""
        return self.scheme == "rediss"

    @property
    def location(self) -> str:
        """``host:port`` or the socket path."""
        if self.unix_socket_path is not None:
            return self.unix_socket_path
        return host_port(self.host, self.port)

    @property
    def display_url(self) -> str:
        """The URL with the password masked: safe for reprs and logs."""
        secret = bool(self.password)
        if self.unix_socket_path is not None:
            query = {"db": self.db, "stream": self.stream}
            return display_url("unix", self.unix_socket_path, user=self.username, secret=secret, query=query)
        location = f"{self.location}/{self.db}"
        return display_url(self.scheme, location, user=self.username, secret=secret, query={"stream": self.stream})

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


_OPTIONS = RedisOptions.query_options()
KNOWN_OPTIONS = tuple(sorted({*_OPTIONS, *SINK_OPTIONS}))
"""Every query option a Redis URL accepts (``SINK_OPTIONS`` are ``BaseSink``'s, see ``streamll.url_options``)."""
_read = RedisOptions.reader()


def _credentials(netloc: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """The user name, the password and where the password came from (the URL, else the environment)."""
    username, password = userinfo(netloc)
    values: dict[str, Any] = {"username": username or None, "password": None, "password_source": None}
    if password:
        values.update(password=password, password_source="url")
    elif (found := from_environment(PASSWORD_ENV_VARS, environ)) is not None:
        values.update(password=found[0], password_source=found[1])
    return values


def _address(url: str, parts: Any, query: Mapping[str, str]) -> dict[str, Any]:
    """Host and port (and the database from the path), or the socket path of a ``unix://`` URL."""
    hostport = parts.netloc.rpartition("@")[2]
    if parts.scheme == "unix":
        path = parts.path
        if hostport or not path:
            raise ConfigurationError("a unix:// URL names a socket path: unix:///path/to/redis.sock")
        return {"unix_socket_path": path}
    hosts = parse_hosts(url, hostport, "redis", DEFAULT_PORT)
    if len(hosts) > 1:
        raise ConfigurationError(f"redis URL {mask_url(url)!r} names more than one host")
    host, port = hosts[0] if hosts else ("localhost", DEFAULT_PORT)
    values: dict[str, Any] = {"host": host, "port": port}
    db_path = parts.path.strip("/")
    if db_path:
        if "db" in query:
            raise ConfigurationError("give the redis database either in the path (/1) or as ?db=1, not both")
        values["db"] = _read.integer("db (the URL path)", db_path, 0)
    return values


def parse_url(url: str, environ: Mapping[str, str] | None = None) -> RedisOptions:
    """Parse a ``redis://``, ``rediss://`` or ``unix://`` URL; raises ConfigurationError naming the problem."""
    parts = split_url(url, "Redis", example=DEFAULT_URL)
    if parts.scheme not in SCHEMES:
        raise ConfigurationError(f"redis URL must start with one of {', '.join(s + '://' for s in SCHEMES)}")
    query = _read.query(
        parts.query,
        KNOWN_OPTIONS,
        credentials_hint=f"the URL (redis://user:password@host) or in ${PASSWORD_ENV_VARS[0]}",
    )
    values: dict[str, Any] = {"scheme": parts.scheme, "sink_options": _read.sink_options(query)}
    values |= _credentials(parts.netloc, os.environ if environ is None else environ)
    values |= _address(url, parts._replace(path=unquote(parts.path)), query)
    for name, raw in query.items():
        if name in TLS_OPTIONS and parts.scheme != "rediss":
            raise ConfigurationError(f"redis URL option {name!r} needs a rediss:// (TLS) URL")
        values[name] = _OPTIONS[name](name, raw)
    return RedisOptions(**values)


parse_redis_url = parse_url
"""The name this function had before every transport called it ``parse_url``."""

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
    "parse_url",
]
