"""Typed access to URL query options for sink and consumer plugins.

A transport plugin reads its URL's query string with an :class:`OptionReader`
named after the transport, so every error says which transport and which
option is wrong (``redis URL option maxlen='lots': expected an integer``)::

    read = OptionReader("redis")
    query = read.query(parts.query, KNOWN_OPTIONS)   # rejects unknown and repeated options
    sink_options = read.sink_options(query)          # BaseSink's options, taken out of ``query``
    maxlen = read.integer("maxlen", query["maxlen"], minimum=0)

Error messages quote option values, never the URL: :func:`mask_url` gives a
URL that is safe to show.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar
from urllib.parse import SplitResult, parse_qsl, urlsplit

from streamll.errors import ConfigurationError
from streamll.plugins import mask_credentials
from streamll.sinks.base import Overflow

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


def split_url(url: object, transport: str, *, example: str) -> SplitResult:
    """``url`` split into its parts (``scheme`` lower-cased), after the checks every transport makes.

    It must be a string like ``example`` without a ``#`` part (a ``#`` in a
    password is percent-encoded as ``%23``; unencoded, it would cut the
    password in two). Errors show the URL masked. The caller checks the scheme.
    """
    if not isinstance(url, str) or "://" not in url:
        shown = mask_url(url) if isinstance(url, str) else url
        raise ConfigurationError(f"expected a {transport} URL like {example!r}, got {shown!r}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigurationError(f"cannot parse {transport} URL {mask_url(url)!r}: {exc}") from None
    if parts.fragment:
        raise ConfigurationError(
            f"{transport} URL {mask_url(url)!r} has a '#' part; percent-encode '#' in passwords as %23"
        )
    return parts._replace(scheme=parts.scheme.lower())


def mask_url(url: str) -> str:
    """``url`` with its password and secret query values replaced by ``***`` (safe to log, even when it does not parse).

    Everything between the first ``:`` after ``scheme://`` and the last ``@``
    counts as the password, so one with an unencoded ``/``, ``?`` or ``#`` is
    masked too.
    """
    scheme_end = url.find("://")
    if scheme_end >= 0:
        start = scheme_end + 3
        at = url.rfind("@", start)
        colon = url.find(":", start, at) if at >= 0 else -1
        if colon >= 0:
            url = f"{url[: colon + 1]}***{url[at:]}"
    return mask_credentials(url)


__all__ = [
    "CREDENTIAL_OPTIONS",
    "FALSE_WORDS",
    "SINK_OPTIONS",
    "TRUE_WORDS",
    "Converter",
    "OptionReader",
    "SinkOptions",
    "mask_url",
    "sink_arguments",
    "split_url",
]
