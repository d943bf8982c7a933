"""How one event becomes one Kafka record: key, value and headers.

* key: the event's ``execution_id`` (UTF-8), so every event of one execution
  goes to one partition and stays in order;
* value: the wire-format v1 JSON body (``streamll.core.serialization``);
* headers: the CloudEvents 1.0 attributes in binary mode (``ce_id``,
  ``ce_type``, ``ce_source``, ``ce_time``, ``ce_specversion``, ``ce_subject``,
  ...) plus ``content-type: application/json``, so consumers in any language
  can route and de-duplicate without parsing the body.
"""

from __future__ import annotations

from streamll.core import cloudevents
from streamll.core.events import Event
from streamll.core.serialization import encode_event

HEADER_PREFIX = "ce_"
"""CloudEvents Kafka protocol binding: attribute headers are ``ce_<name>``."""
CONTENT_TYPE_HEADER = ("content-type", cloudevents.CONTENT_TYPE.encode("ascii"))

Headers = list[tuple[str, bytes]]


def record_key(event: Event) -> bytes | None:
    """The partitioning key: ``execution_id`` (None for an event outside any execution)."""
    return event.execution_id.encode("utf-8") if event.execution_id else None


def record_value(event: Event) -> bytes:
    """The record body: the one JSON encoding every transport uses."""
    return encode_event(event)


def record_headers(event: Event) -> Headers:
    """CloudEvents binary-mode headers with UTF-8 values, and the content type."""
    headers: Headers = [
        (name, value.encode("utf-8")) for name, value in cloudevents.headers(event, HEADER_PREFIX).items()
    ]
    headers.append(CONTENT_TYPE_HEADER)
    return headers


__all__ = ["CONTENT_TYPE_HEADER", "HEADER_PREFIX", "Headers", "record_headers", "record_key", "record_value"]
