"""The event layout streamll 0.1 wrote and read, for mixed deployments during an upgrade.

0.1 events had no ``sequence`` or ``schema_version``, named LM calls
``llm_start`` / ``llm_end`` (operation ``"generate"``), gave durations in
seconds (``data["duration"]``, ``data["duration_seconds"]`` for traces), put
``set_context`` ids in ``data``, and required ``tags`` values to be strings.

* :func:`from_v01` turns a 0.1 body into a v1 body (what the consumers decode).
* :func:`to_v01` is the 0.1 view of a v1 event: what a 0.1 consumer validates.
"""

from __future__ import annotations

from typing import Any

from streamll.core.events import Event
from streamll.core.serialization import event_to_dict

LM_TYPES_V01 = {"llm_start": "start", "llm_end": "end"}
"""0.1 LM event types and the v1 event type each became (with ``operation="lm"``)."""
_LM_TYPES_V1 = {value: key for key, value in LM_TYPES_V01.items()}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def from_v01(body: dict[str, Any]) -> dict[str, Any]:
    """A v1 event body for a 0.1 event body (``body`` itself is left unchanged)."""
    result = dict(body)
    data = result.get("data")
    data = dict(data) if isinstance(data, dict) else {}
    event_type = result.get("event_type")
    if event_type in LM_TYPES_V01:
        result["event_type"] = LM_TYPES_V01[event_type]
        result["operation"] = "lm"
    if "duration_ms" not in data:
        for key in ("duration", "duration_seconds"):
            if _number(data.get(key)):
                data["duration_ms"] = data[key] * 1000
                break
    if result.get("event_type") == "token":
        if "field" not in data and isinstance(data.get("signature_field"), str):
            data["field"] = data["signature_field"]
        if "token_index" not in data and isinstance(data.get("index"), int):
            data["token_index"] = data["index"]
    result["data"] = data
    return result


def v01_data(event: Event) -> dict[str, Any] | None:
    """``event.data`` plus what 0.1 code read there, never overwriting a key; ``None`` when nothing is added.

    0.1 put ``set_context`` ids in ``data`` and gave durations in seconds (``data["duration"]``).
    """
    data = event.data
    extra = {key: value for key, value in event.tags.items() if key not in data}
    milliseconds = data.get("duration_ms")
    if "duration" not in data and isinstance(milliseconds, (int, float)) and not isinstance(milliseconds, bool):
        extra["duration"] = milliseconds / 1000
    return {**data, **extra} if extra else None


def to_v01(event: Event) -> dict[str, Any]:
    """The 0.1 view of ``event``: valid for 0.1's ``streamll.models.Event`` and what its consumers read.

    ``set_context`` ids (v1 ``tags``) are also copied into ``data`` where 0.1
    put them, durations are also given in seconds, and LM events keep their
    0.1 names.
    """
    body = event_to_dict(event)
    data = dict(body.get("data") or {})
    tags = body.get("tags") or {}
    for key, value in tags.items():
        data.setdefault(key, value)
    if _number(data.get("duration_ms")) and "duration" not in data:
        data["duration"] = data["duration_ms"] / 1000
    body["data"] = data
    body["tags"] = {key: value if isinstance(value, str) else str(value) for key, value in tags.items()}
    body["module_name"] = body.get("module_name") or "unknown"
    body["method_name"] = body.get("method_name") or "forward"
    if body.get("operation") == "lm" and body.get("event_type") in _LM_TYPES_V1:
        body["event_type"] = _LM_TYPES_V1[body["event_type"]]
        body["operation"] = "generate"
    return body


__all__ = ["LM_TYPES_V01", "from_v01", "to_v01", "v01_data"]
