"""The JSON Schema (draft 2020-12) of the wire format v1, shipped with core.

``event.v1.json`` beside this module is the contract for consumers in any
language. :func:`validate_event` checks an event against it; it needs the
``jsonschema`` package (``pip install 'streamll-core[schema]'``), which is
imported only when validation is first asked for.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from streamll.errors import MalformedEventError

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

    from streamll.core.events import Event

SCHEMA_FILE = "event.v1.json"


@cache
def _schema_text() -> str:
    return files(__name__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


def load_schema() -> dict[str, Any]:
    """The wire format v1 schema as a fresh dict (safe to modify)."""
    schema: dict[str, Any] = json.loads(_schema_text())
    return schema


@cache
def validator() -> Validator:
    """A compiled draft 2020-12 validator for the schema, with format checking (built once)."""
    try:
        from jsonschema import Draft202012Validator
    except ImportError as exc:
        raise ImportError(
            "validating events needs the jsonschema package: pip install 'streamll-core[schema]'"
        ) from exc
    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _as_body(event_or_dict: Event | dict[str, Any] | bytes | str) -> Any:
    from streamll.core.events import Event
    from streamll.core.serialization import event_to_dict

    if isinstance(event_or_dict, Event):
        return event_to_dict(event_or_dict)
    if isinstance(event_or_dict, (bytes, str)):
        try:
            return json.loads(event_or_dict)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedEventError(f"not JSON: {exc}") from exc
    return event_or_dict


def schema_errors(event_or_dict: Event | dict[str, Any] | bytes | str) -> list[str]:
    """Every way the event (an :class:`Event`, its wire dict or its JSON body) breaks the schema; empty if valid."""
    body = _as_body(event_or_dict)
    errors = sorted(validator().iter_errors(body), key=lambda error: error.json_path)
    return [f"{error.json_path}: {error.message}" for error in errors]


def validate_event(event_or_dict: Event | dict[str, Any] | bytes | str) -> None:
    """Raise :class:`~streamll.errors.MalformedEventError` naming every violation if the event is not valid v1."""
    errors = schema_errors(event_or_dict)
    if errors:
        raise MalformedEventError("not a valid v1 event: " + "; ".join(errors))


__all__ = ["SCHEMA_FILE", "load_schema", "schema_errors", "validate_event", "validator"]
