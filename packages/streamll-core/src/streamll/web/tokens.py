"""Access tokens for the relay: HMAC-signed, expiring, bound to one execution.

``EventSource`` cannot send headers, so the token travels as ``?token=``. A
token is ``<expiry>.<signature>`` where the signature is HMAC-SHA256 of
``<execution_id>.<expiry>`` under the server's secret: it reads that one
execution until it expires. A token signed for ``"*"`` (:data:`ANY_EXECUTION`)
reads every execution and the list of executions (for the live page).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

ANY_EXECUTION = "*"
"""Sign for this "execution id" to make a token that reads every execution (operators' live page)."""
DEFAULT_TTL = 3600.0


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if not secret:
        raise ValueError("the relay secret must not be empty")
    return secret


def _signature(execution_id: str, expiry: int, secret: str | bytes) -> str:
    digest = hmac.new(_key(secret), f"{execution_id}.{expiry}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign(execution_id: str, secret: str | bytes, *, ttl: float = DEFAULT_TTL, now: float | None = None) -> str:
    """A token that reads ``execution_id`` for ``ttl`` seconds (pass it as ``?token=``)."""
    if not execution_id:
        raise ValueError("sign() needs the execution_id the token is for")
    if ttl <= 0:
        raise ValueError(f"ttl must be > 0 seconds, got {ttl}")
    expiry = int((time.time() if now is None else now) + ttl)
    return f"{expiry}.{_signature(execution_id, expiry, secret)}"


def verify(token: str | None, execution_id: str, secret: str | bytes, *, now: float | None = None) -> bool:
    """True when ``token`` was signed with ``secret`` for ``execution_id`` (or for any) and has not expired."""
    if not token or token.count(".") != 1:
        return False
    expiry_text, signature = token.split(".")
    if not expiry_text.isdigit():
        return False
    expiry = int(expiry_text)
    if expiry < (time.time() if now is None else now):
        return False
    return any(
        hmac.compare_digest(signature, _signature(scope, expiry, secret))
        for scope in dict.fromkeys((execution_id, ANY_EXECUTION))
    )


__all__ = ["ANY_EXECUTION", "DEFAULT_TTL", "sign", "verify"]
