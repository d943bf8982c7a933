"""streamll 0.1's Redis entry layout: one ``__data__`` field holding a FastStream message.

streamll 0.1 published through FastStream, whose stream entries have a
single field ``__data__``: either a JSON envelope
``{"data": "<event JSON>", "headers": {...}}`` (FastStream 0.5) or the binary
format that starts with ``\\x89BIN\\r\\n\\x1a\\n`` (FastStream 0.6 and later,
which still reads the JSON envelope). Reading both and writing the JSON envelope
live here, below the entry reader and the 0.1-compatible sink that use them.
"""

from __future__ import annotations

import json
import struct
import uuid
from typing import Any

from streamll.core.events import Event
from streamll.v01 import from_v01, to_v01

__all__ = ["BINARY_MAGIC", "LEGACY_DATA_FIELD", "legacy_body", "legacy_envelope"]

LEGACY_DATA_FIELD = "__data__"
BINARY_MAGIC = b"\x89BIN\r\n\x1a\n"


def legacy_envelope(event: Event) -> bytes:
    """The ``__data__`` value a 0.1 consumer (any FastStream version) decodes into ``event``'s 0.1 view."""
    body = json.dumps(to_v01(event), ensure_ascii=False, separators=(",", ":"))
    headers = {"correlation_id": str(uuid.uuid4()), "content-type": "application/json"}
    return json.dumps({"data": body, "headers": headers}, ensure_ascii=False).encode("utf-8")


def _message_body(raw: bytes) -> bytes:
    """The message body inside a FastStream ``__data__`` value (binary v1 or JSON envelope)."""
    if raw.startswith(BINARY_MAGIC):
        offset = len(BINARY_MAGIC)
        (version,) = struct.unpack(">H", raw[offset : offset + 2])
        if version == 1:
            (data_start,) = struct.unpack(">I", raw[offset + 6 : offset + 10])
            return raw[data_start:]
        return raw
    envelope = json.loads(raw)
    if isinstance(envelope, dict) and isinstance(envelope.get("data"), str):
        return envelope["data"].encode("utf-8")
    return raw


def legacy_body(raw: Any) -> bytes:
    """A v1 JSON body for the ``__data__`` value of a 0.1 entry.

    Anything that does not parse is returned as it is, so the consumer's
    decoder reports it as a malformed message (counted, acknowledged, skipped).
    """
    if not isinstance(raw, bytes):
        raw = str(raw).encode("utf-8", "surrogatepass")
    try:
        body = json.loads(_message_body(raw))
    except (ValueError, struct.error, RecursionError, UnicodeDecodeError):
        return raw
    if not isinstance(body, dict):
        return raw
    try:
        return json.dumps(from_v01(body), ensure_ascii=False).encode("utf-8", "surrogatepass")
    except (ValueError, TypeError, RecursionError):
        return raw
