"""Typed URL query options for the transport plugins, declared once per transport.

A transport declares its options as a :class:`UrlOptions` model whose fields say how
their query option is read (``db: Annotated[int, at_least(0)] = 0``), so the option
table, the "known options" list and the conversions come from one declaration. Every
error names the transport and the option (``redis URL option maxlen='lots': expected an
integer``) and quotes option values, never the URL. Hosts, credentials and masking are
in :mod:`streamll.url_parts` (re-exported here, so a plugin imports from one module).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypedDict, TypeVar
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, ValidationError

from streamll.errors import ConfigurationError
from streamll.sinks.base import Overflow
from streamll.url_parts import (
    MASK,
    display_url,
    env_names,
    from_environment,
    host_port,
    mask_credentials,
    mask_url,
    parse_hosts,
    split_url,
    userinfo,
)

T = TypeVar("T")
Converter = Callable[[str, str], T]
"""``converter(name, raw)``: the typed value of option ``name`` given as the text ``raw``."""

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

SINK_OPTIONS = ("buffer_size", "buffer_bytes", "batch_size", "linger", "overflow", "block_timeout", "spill_path")
"""``BaseSink`` options every sink URL may carry (``?buffer_size=50000&overflow=spill``)."""

CREDENTIAL_OPTIONS = ("password", "username", "user")
"""Query options people try for credentials; :meth:`OptionReader.query` can say where they go instead."""

_DURATION = re.compile(r"^\s*(-?)(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([kmg]i?b|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class SinkOptions(TypedDict, total=False):
    """Keyword options a transport sink passes on to ``BaseSink`` (``None``: not given, use the URL's)."""

    name: str | None
    buffer_size: int | None
    buffer_bytes: int | None
    batch_size: int | None
    linger: float | None
    overflow: Overflow | str | None
    block_timeout: float | None
    spill_path: str | None


@dataclass(frozen=True)
class OptionReader:
    """Converters from query text to typed values whose errors name the transport and the option.

    ``source`` says where values come from in messages: ``"URL option"`` or,
    for values read from the environment, ``"environment variable"``.
    """

    transport: str
    source: str = "URL option"

    def error(self, name: str, raw: str, problem: str) -> ConfigurationError:
        """``ConfigurationError("<transport> <source> <name>=<raw>: <problem>")``."""
        return ConfigurationError(f"{self.transport} {self.source} {name}={raw!r}{problem}")

    def boolean(self, name: str, raw: str) -> bool:
        """``1/true/yes/on`` or ``0/false/no/off`` (any case)."""
        value = raw.strip().lower()
        if value in TRUE_WORDS:
            return True
        if value in FALSE_WORDS:
            return False
        raise self.error(name, raw, f" is not a boolean: expected one of {', '.join(TRUE_WORDS + FALSE_WORDS)}")

    def integer(self, name: str, raw: str, minimum: int = 0) -> int:
        """A whole number ``>= minimum``."""
        try:
            value = int(raw)
        except ValueError:
            raise self.error(name, raw, ": expected an integer") from None
        if value < minimum:
            raise self.error(name, raw, f": must be >= {minimum}")
        return value

    def at_least(self, minimum: int) -> Converter[int]:
        """A converter of whole numbers ``>= minimum`` (for option tables)."""

        def convert(name: str, raw: str) -> int:
            """``raw`` as a whole number ``>= minimum``."""
            return self.integer(name, raw, minimum)

        return convert

    def seconds(self, name: str, raw: str) -> float:
        """Seconds ``>= 0`` from ``"30"``, ``"0.5"``, ``"500ms"``, ``"30s"``, ``"5m"``, ``"2h"`` or ``"7d"``."""
        match = _DURATION.match(raw)
        if match is None:
            raise self.error(name, raw, " is not a duration: expected a number of seconds, or a number with ms/s/m/h/d")
        sign, number, unit = match.groups()
        value = float(number) * _UNITS[unit]
        if sign and value:
            raise self.error(name, raw, ": must be >= 0")
        return value

    def size(self, name: str, raw: str) -> int:
        """A byte count: ``65536``, ``64KiB``, ``64MiB``, ``1GiB`` (``KB``/``MB``/``GB`` are powers of 1000)."""
        match = _SIZE.match(raw)
        if not match:
            raise self.error(name, raw, " is not a size in bytes (examples: 65536, 64KiB, 64MiB)")
        value = int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()])
        if value < 1024:
            raise self.error(name, raw, ": must be >= 1024 bytes")
        return value

    def text(self, name: str, raw: str) -> str:
        """Any text but the empty one."""
        if not raw:
            raise ConfigurationError(f"{self.transport} {self.source} {name} is empty")
        return raw

    def choice(self, choices: tuple[str, ...]) -> Converter[str]:
        """A converter to one of ``choices``, matched case-insensitively and returned as spelled there."""
        by_key = {choice.lower(): choice for choice in choices}

        def convert(name: str, raw: str) -> str:
            """``raw`` as one of the choices."""
            value = by_key.get(raw.strip().lower())
            if value is None:
                raise self.error(name, raw, f": expected one of {', '.join(choices)}")
            return value

        return convert

    def query(self, query: str, known: Collection[str], *, credentials_hint: str | None = None) -> dict[str, str]:
        """The query's options by name; raises for an unknown or repeated option.

        With ``credentials_hint`` (where credentials go instead, e.g. ``"the
        URL (redis://user:password@host)"``), ``?password=`` and the like get an
        error that says so.
        """
        pairs: dict[str, str] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            if name in pairs:
                raise ConfigurationError(f"{self.transport} URL option {name!r} is given twice")
            if name not in known:
                if credentials_hint is not None and name in CREDENTIAL_OPTIONS:
                    raise ConfigurationError(
                        f"{self.transport} URL option {name!r} is not supported: put credentials in {credentials_hint}"
                    )
                raise ConfigurationError(
                    f"unknown {self.transport} URL option {name!r}; known options: {', '.join(sorted(known))}"
                )
            pairs[name] = value
        return pairs

    def sink_options(self, query: dict[str, str]) -> dict[str, Any]:
        """Take the :data:`SINK_OPTIONS` out of ``query`` and return them converted.

        ``overflow`` stays text here: ``BaseSink`` names the policies when it is wrong.
        """
        converters: dict[str, Converter[Any]] = {
            "buffer_size": self.at_least(1),
            "buffer_bytes": self.size,
            "batch_size": self.at_least(1),
            "linger": self.seconds,
            "overflow": self.text,
            "block_timeout": self.seconds,
            "spill_path": self.text,
        }
        return {name: converters[name](name, query.pop(name)) for name in SINK_OPTIONS if name in query}


def sink_arguments(from_url: Mapping[str, Any], given: Mapping[str, Any], *, default_name: str) -> dict[str, Any]:
    """Keyword arguments for ``BaseSink.__init__``: the URL's sink options, overridden by those ``given``.

    A ``None`` in ``given`` means "not given"; without a name, ``default_name`` is used.
    """
    arguments = {**from_url, **{key: value for key, value in given.items() if value is not None}}
    arguments["name"] = arguments.get("name") or default_name
    return arguments


# ---------------------------------------------------------------------------- declarative options


@dataclass(frozen=True)
class Opt:
    """Marks a :class:`UrlOptions` field as a query option and says how its text is read.

    Used as ``Annotated`` metadata: ``maxlen: Annotated[int, at_least(0)] = 100_000``.
    ``make`` builds the converter from the transport's :class:`OptionReader`.
    """

    make: Callable[[OptionReader], Converter[Any]]


def at_least(minimum: int) -> Opt:
    """A whole number ``>= minimum``."""
    return Opt(lambda read: read.at_least(minimum))


def one_of(choices: tuple[str, ...]) -> Opt:
    """One of ``choices`` (case-insensitive)."""
    return Opt(lambda read: read.choice(choices))


def converted(convert: Converter[Any]) -> Opt:
    """Read with ``convert(name, raw)``, a transport's own converter."""
    return Opt(lambda read: convert)


BOOLEAN = Opt(lambda read: read.boolean)
SECONDS = Opt(lambda read: read.seconds)
TEXT = Opt(lambda read: read.text)
VERBATIM = Opt(lambda read: lambda name, raw: raw)
"""Any text, the empty one included."""


def _configuration_error(transport: str, exc: ValidationError) -> ConfigurationError:
    """The ``ConfigurationError`` a model check raised, or one describing pydantic's first complaint."""
    error = exc.errors()[0]
    original = (error.get("ctx") or {}).get("error")
    if isinstance(original, ConfigurationError):
        return original
    where = ".".join(str(part) for part in error["loc"]) or "options"
    return ConfigurationError(f"{transport} option {where}: {error['msg']}")


class OptionModel(BaseModel):
    """Options read from a URL's query: frozen, checked on construction.

    Subclasses set :attr:`transport` and mark query options with :class:`Opt` metadata;
    :meth:`query_options` is the option table built from those declarations. A failed
    check raises :class:`~streamll.errors.ConfigurationError` naming the problem.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    transport: ClassVar[str] = "url"
    """The name errors start with (``redis``, ``NATS``, ``kafka``)."""

    def __init__(self, **values: Any) -> None:
        """Build and check the options; raises ``ConfigurationError`` rather than pydantic's error."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise _configuration_error(type(self).transport, exc) from None

    @classmethod
    def reader(cls, source: str = "URL option") -> OptionReader:
        """The converters, with errors naming this transport and ``source``."""
        return OptionReader(cls.transport, source)

    @classmethod
    def query_options(cls, source: str = "URL option") -> dict[str, Converter[Any]]:
        """Each declared query option and the converter that reads it."""
        read = cls.reader(source)
        table: dict[str, Converter[Any]] = {}
        for name, info in cls.model_fields.items():
            for mark in info.metadata:
                if isinstance(mark, Opt):
                    table[name] = mark.make(read)
        return table

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` applied and checked again."""
        return type(self)(**{**{name: getattr(self, name) for name in type(self).model_fields}, **changes})


class UrlOptions(OptionModel):
    """Base of a transport's URL options: an :class:`OptionModel` whose reprs show the URL without secrets."""

    @property
    def display_url(self) -> str:
        """The URL without secrets: safe for reprs, logs and sink names (each transport says how)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        """``<Class>('<display_url>')``: never a secret."""
        return f"{type(self).__name__}({self.display_url!r})"

    def __str__(self) -> str:
        """Same as ``repr``."""
        return repr(self)


__all__ = [
    "BOOLEAN",
    "CREDENTIAL_OPTIONS",
    "FALSE_WORDS",
    "MASK",
    "SECONDS",
    "SINK_OPTIONS",
    "TEXT",
    "TRUE_WORDS",
    "VERBATIM",
    "Converter",
    "Opt",
    "OptionModel",
    "OptionReader",
    "SinkOptions",
    "UrlOptions",
    "at_least",
    "converted",
    "display_url",
    "env_names",
    "from_environment",
    "host_port",
    "mask_credentials",
    "mask_url",
    "one_of",
    "parse_hosts",
    "sink_arguments",
    "split_url",
    "userinfo",
]
