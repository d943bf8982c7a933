"""The parts of a transport URL every plugin reads the same way: hosts, credentials, and masking.

* hosts: :func:`parse_hosts` reads ``host[:port][,host[:port]...]`` (IPv6 in brackets);
* credentials: from the URL (:func:`userinfo`), else from the environment,
  ``STREAMLL_<TRANSPORT>_<NAME>`` first, then the variable the transport's own tools read
  (:func:`env_names`, :func:`from_environment`); where a secret came from is recorded,
  never the secret;
* masking: :func:`mask_credentials` / :func:`mask_url` for text that may hold a URL,
  :func:`display_url` for the URL an options object shows in reprs and logs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import SplitResult, quote, unquote, urlsplit

from streamll.errors import ConfigurationError

__all__ = [
    "MASK",
    "display_url",
    "env_names",
    "from_environment",
    "host_port",
    "mask_credentials",
    "mask_url",
    "parse_hosts",
    "split_url",
    "userinfo",
]


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


MASK = "***"
"""What every secret is shown as."""

_PASSWORD_IN_NETLOC = re.compile(r"(?<=:)[^:@/\s]+(?=@)")
_SECRET_IN_QUERY = re.compile(r"(?i)((?:password|passwd|pass|secret|token|api_key|apikey)=)[^&#\s]*")


def mask_credentials(text: str) -> str:
    """``text`` (a URL, or a message quoting one) with passwords and tokens replaced by ``***``."""
    return _SECRET_IN_QUERY.sub(rf"\1{MASK}", _PASSWORD_IN_NETLOC.sub(MASK, text))


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
            url = f"{url[: colon + 1]}{MASK}{url[at:]}"
    return mask_credentials(url)


def display_url(
    scheme: str,
    location: str,
    *,
    user: str | None = None,
    secret: bool = False,
    token: bool = False,
    query: Mapping[str, Any] | None = None,
) -> str:
    """The URL an options object shows: credentials as ``***`` (a user name stays), then ``location`` and ``query``.

    ``user:***@`` for a user with a password, ``:***@`` for a password alone, ``***@``
    for a token in the user position.
    """
    auth = ""
    if token:
        auth = f"{MASK}@"
    elif user or secret:
        auth = quote(user or "", safe="") + (f":{MASK}" if secret else "") + "@"
    text = "&".join(f"{name}={quote(str(value), safe='.')}" for name, value in (query or {}).items())
    return f"{scheme}://{auth}{location}" + (f"?{text}" if text else "")


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_hosts(url: str, text: str, transport: str, default_port: int) -> tuple[tuple[str, int], ...]:
    """The ``host[:port][,host[:port]...]`` part ``text`` of ``url`` as (host, port) pairs (IPv6: ``[::1]:port``).

    Empty items between commas are an error; an empty ``text`` gives no hosts (the caller
    decides whether that means a default or an error). Errors show ``url`` masked.
    """
    if not text.strip():
        return ()
    hosts: list[tuple[str, int]] = []
    for item in (part.strip() for part in text.split(",")):
        problem = "an empty host in its host list" if not item else None
        if item.startswith("["):
            host, bracket, rest = item[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                problem = "a host that is not written [ipv6]:port"
            port_text = rest[1:]
        else:
            host, _, port_text = item.rpartition(":") if ":" in item else (item, "", "")
        host = unquote(host)
        if item and not host and problem is None:
            problem = "a host without a name"
        if problem is None:
            problem = _port_problem(port_text)
        if problem is not None:
            raise ConfigurationError(f"{transport} URL {mask_url(url)!r} has {problem}")
        hosts.append((host, int(port_text) if port_text else default_port))
    return tuple(hosts)


def _port_problem(text: str) -> str | None:
    """What is wrong with a written port (``None``: nothing, or no port written)."""
    if text and not text.isdigit():
        return "an invalid port (not an integer)"
    if text and not 0 < int(text) < 65536:
        return "an invalid port (out of range 1-65535)"
    return None


def userinfo(netloc: str) -> tuple[str | None, str | None]:
    """The (user, password) written before ``@`` in ``netloc``, percent-decoded; ``None`` where absent.

    ``user@`` gives no password; ``user:@`` an empty one.
    """
    if "@" not in netloc:
        return None, None
    name, colon, secret = netloc.rpartition("@")[0].partition(":")
    return unquote(name), unquote(secret) if colon else None


def env_names(transport: str, name: str, *native: str) -> tuple[str, ...]:
    """The environment variables a credential or file option is read from: ours first, then the tools' own.

    ``env_names("redis", "password", "REDIS_PASSWORD")`` -> ``("STREAMLL_REDIS_PASSWORD", "REDIS_PASSWORD")``.
    """
    return (f"STREAMLL_{transport.upper()}_{name.upper()}", *native)


def from_environment(names: Sequence[str], environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(value, variable) of the first of ``names`` set to a non-empty value, else ``None``.

    The one rule for credentials and files the URL does not give: the URL wins, then
    these variables in order; callers record the variable's name, never its value.
    """
    for name in names:
        value = environ.get(name)
        if value:
            return value, name
    return None
