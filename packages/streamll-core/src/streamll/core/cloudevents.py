"""CloudEvents 1.0 attributes of an event, for binary-mode headers on Kafka and NATS.

The body stays the v1 JSON event; the headers let consumers in any language
route and de-duplicate without parsing it. Mapping (see docs/wire-format.md):

===============  =================================  ==========================
CloudEvents       value                              Kafka header / NATS header
===============  =================================  ==========================
id                ``event_id``                       ``ce_id`` / ``ce-id``
type              ``dev.streamll.<event_type>``      ``ce_type`` / ``ce-type``
source            ``STREAMLL_SOURCE`` or             ``ce_source`` / ``ce-source``
                  ``/streamll/<module_name>``
time              ``timestamp`` (RFC 3339, UTC)      ``ce_time`` / ``ce-time``
specversion       ``1.0``                            ``ce_specversion`` / ...
subject           ``execution_id``                   ``ce_subject`` / ...
datacontenttype   ``application/json``               ``content-type`` / ``Content-Type``
===============  =================================  ==========================
"""

from __future__ import annotations

import os

from streamll.core.events import Event

SPEC_VERSION = "1.0"
TYPE_PREFIX = "dev.streamll."
SOURCE_ENV = "STREAMLL_SOURCE"
CONTENT_TYPE = "application/json"


def event_type_uri(event_type: str) -> str:
    """``token`` -> ``dev.streamll.token``."""
    return TYPE_PREFIX + event_type


def attributes(event: Event) -> dict[str, str]:
    """The CloudEvents context attributes of ``event`` (without ``datacontenttype``)."""
    source = os.environ.get(SOURCE_ENV) or f"/streamll/{event.module_name or 'app'}"
    timestamp = event.timestamp.isoformat().replace("+00:00", "Z")
    return {
        "id": event.event_id,
        "type": event_type_uri(event.event_type),
        "source": source,
        "time": timestamp,
        "specversion": SPEC_VERSION,
        "subject": event.execution_id,
        "streamllschemaversion": event.schema_version,
    }


def headers(event: Event, prefix: str) -> dict[str, str]:
    """Binary-mode headers: ``prefix`` is ``"ce_"`` for Kafka, ``"ce-"`` for NATS."""
    return {prefix + name: value for name, value in attributes(event).items()}


__all__ = ["CONTENT_TYPE", "SOURCE_ENV", "SPEC_VERSION", "TYPE_PREFIX", "attributes", "event_type_uri", "headers"]
