"""Synthesising reply values: a valid value for each output field DSPy asks for.

Typed fields get a value of their type (read from DSPy's type notes, JSON schemas, Python
annotations or XML templates); text fields get deterministic prose named after the field.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree as ET

from streamll.testing.lm_server.prompt import BOOL_NOTE, FLOAT_NOTE, INT_NOTE, ChatRequest, note_choices

__all__ = ["DEFAULT_ANSWERS", "default_value", "field_values"]

DEFAULT_ANSWERS: dict[str, str] = {
    "reasoning": (
        "The question asks for a short definition. Machine learning is a field of artificial "
        "intelligence, so the answer should say that plainly."
    ),
    "rationale": "The question asks for a short definition, so a single sentence is enough.",
    "analysis": (
        "The question concerns machine learning. It is a branch of artificial intelligence in which "
        "systems learn patterns from data."
    ),
    "answer": "Machine learning is a subset of artificial intelligence.",
    "response": "Machine learning is a subset of artificial intelligence.",
    "summary": "Machine learning lets computers learn from data without explicit programming.",
    "explanation": "Models are trained on examples and then generalize to new inputs.",
}
"""Default reply text for common output field names."""

_NOTED_SCALARS: dict[str, Any] = {BOOL_NOTE: True, INT_NOTE: 42, FLOAT_NOTE: 3.14}
"""Values for the fields whose type DSPy states in a note rather than an annotation."""
_WORDS = ("alpha", "beta", "gamma", "delta")
_FORMATTED_STRINGS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00",
    "uri": "https://example.com",
    "email": "user@example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def _bounded_number(schema: dict[str, Any], *, integer: bool) -> int | float:
    """Return 42 (or 3.14) when allowed by the schema's bounds, else the nearest bound."""
    preferred: float = 42 if integer else 3.14
    step = 1 if integer else 0.5
    low = schema.get("minimum", schema["exclusiveMinimum"] + step if "exclusiveMinimum" in schema else None)
    high = schema.get("maximum", schema["exclusiveMaximum"] - step if "exclusiveMaximum" in schema else None)
    value = preferred
    if low is not None and value < low:
        value = low
    if high is not None and value > high:
        value = high
    return int(value) if integer else float(value)


def _schema_example(schema: Any, defs: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """Return a deterministic value that validates against a (pydantic-generated) JSON schema."""
    if not isinstance(schema, dict) or depth > 8:
        return "example"
    defs = {**(defs or {}), **(schema.get("$defs") or {}), **(schema.get("definitions") or {})}
    if "$ref" in schema:
        target = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1])
        return _schema_example(target, defs, depth + 1) if target is not None else "example"
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            options = [s for s in schema[key] if not (isinstance(s, dict) and s.get("type") == "null")]
            return _schema_example((options or schema[key])[0], defs, depth + 1)
    if schema.get("allOf"):
        return _schema_example(schema["allOf"][0], defs, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "string":
        return _string_example(schema)
    if kind in ("integer", "number"):
        return _bounded_number(schema, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "array":
        return _array_example(schema, defs, depth)
    if kind == "object" or "properties" in schema:
        return _object_example(schema, defs, depth)
    return "example"


def _string_example(schema: dict[str, Any]) -> str:
    """A string honouring the schema's ``format`` and length bounds."""
    text = _FORMATTED_STRINGS.get(schema.get("format", ""), "example")
    text = text.ljust(int(schema.get("minLength", 0)), "x")
    return text[: int(schema["maxLength"])] if "maxLength" in schema else text


def _array_example(schema: dict[str, Any], defs: dict[str, Any], depth: int) -> list[Any]:
    """A list honouring ``prefixItems``, ``items`` and the item-count bounds."""
    prefix = schema.get("prefixItems")
    if prefix:
        return [_schema_example(item, defs, depth + 1) for item in prefix]
    items = schema.get("items", {})
    count = max(int(schema.get("minItems", 0)), min(2, int(schema.get("maxItems", 2))))
    if isinstance(items, dict) and items.get("type") == "string" and not (items.keys() & {"format", "enum"}):
        return [_WORDS[i] if i < len(_WORDS) else f"item{i}" for i in range(count)]
    return [_schema_example(items, defs, depth + 1) for _ in range(count)]


def _object_example(schema: dict[str, Any], defs: dict[str, Any], depth: int) -> dict[str, Any]:
    """A mapping with every declared property, or one ``additionalProperties`` entry."""
    properties = schema.get("properties") or {}
    if properties:
        return {name: _schema_example(sub, defs, depth + 1) for name, sub in properties.items()}
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and extra:
        return {"key": _schema_example(extra, defs, depth + 1)}
    return {"key": "value"}


_UNKNOWN = object()


def _split_args(text: str) -> list[str]:
    """Split a comma-separated type-argument list at bracket depth zero, respecting quotes."""
    parts: list[str] = []
    depth = 0
    quote = ""
    current: list[str] = []
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
            continue
        if char in "'\"":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def _annotation_example(annotation: str) -> Any:
    """Return a value for a type written as DSPy names it (``int``, ``list[str]``, ``dict[str, int]``, ...).

    Returns the private ``_UNKNOWN`` sentinel for names that carry no usable type information.
    """
    annotation = annotation.strip()
    match = re.fullmatch(r"([\w.]+)(?:\[(.*)\])?", annotation, re.DOTALL)
    if not match:
        return _UNKNOWN
    name = match.group(1).rsplit(".", 1)[-1]
    args = _split_args(match.group(2)) if match.group(2) is not None else []
    scalars: dict[str, Any] = {"str": "example", "int": 42, "float": 3.14, "bool": True, "NoneType": None, "None": None}
    if name in scalars and not args:
        return scalars[name]
    if name == "Any":
        return "example"
    if name == "Literal" and args:
        try:
            return ast.literal_eval(args[0])
        except (ValueError, SyntaxError):
            return args[0]
    if name in ("Union", "Optional"):
        options = [a for a in args if a not in ("NoneType", "None")] or args
        for option in options:
            value = _annotation_example(option)
            if value is not _UNKNOWN:
                return value
        return _UNKNOWN
    if name in ("list", "List", "set", "Set", "frozenset", "FrozenSet", "Sequence"):
        if not args or args[0] in ("str", "Any"):
            return ["alpha", "beta"]
        item = _annotation_example(args[0])
        return _UNKNOWN if item is _UNKNOWN else [item]
    if name in ("tuple", "Tuple"):
        items = [_annotation_example(a) for a in args if a != "..."]
        return _UNKNOWN if any(i is _UNKNOWN for i in items) else items
    if name in ("dict", "Dict", "Mapping"):
        if not args:
            return {"key": "value"}
        value = _annotation_example(args[1]) if len(args) > 1 else "value"
        key = "1" if args[0] == "int" else "key"
        return _UNKNOWN if value is _UNKNOWN else {key: value}
    return _UNKNOWN


def _template_example(template: Any) -> Any:
    """Fill an XMLAdapter nested-structure template (``<t><a>...</a></t>``) with leaf values.

    Leaf types are not stated in the prompt, so leaves get ``"1"``, which pydantic
    accepts for str, int, float and bool fields.
    """
    children = list(template)
    if not children:
        return "1"
    if all(child.tag == "item" for child in children):
        return [_template_example(child) for child in children]
    return {child.tag: _template_example(child) for child in children}


def default_value(name: str, request: ChatRequest | None = None) -> Any:
    """Return the default reply value for output field ``name``.

    Typed fields (as DSPy describes them in the prompt) get a valid value of the
    type: ``int`` -> ``42``, ``bool`` -> ``True``, ``float`` -> ``3.14``, ``Literal``
    or enum -> the first option, JSON-schema types -> a schema-conforming value.
    Text fields get deterministic prose derived from the field name.
    """
    if request is not None:
        note = request.field_notes.get(name, "")
        if note in _NOTED_SCALARS:
            return _NOTED_SCALARS[note]
        choices = note_choices(note)
        if choices:
            return choices[0]
        if name in request.field_schemas:
            return _schema_example(request.field_schemas[name])
        annotation = request.field_types.get(name)
        if annotation and annotation != "str":
            typed = _annotation_example(annotation)
            if typed is not _UNKNOWN:
                return typed
            if name in request.xml_templates:
                return _template_example(ET.fromstring(request.xml_templates[name]))
    if name in DEFAULT_ANSWERS:
        return DEFAULT_ANSWERS[name]
    words = name.replace("_", " ").strip() or "output"
    return f"This is the {words} for the question."


def field_values(
    request: ChatRequest, answers: dict[str, Any], responder: Callable[[ChatRequest], dict[str, Any]] | None
) -> dict[str, Any]:
    """The value of each output field of ``request``: the responder's, then ``answers``, then the default."""
    produced = responder(request) if responder is not None else {}
    values: dict[str, Any] = {}
    for name in request.output_fields:
        if produced and name in produced:
            values[name] = produced[name]
        elif name in answers:
            values[name] = answers[name]
        else:
            values[name] = default_value(name, request)
    return values
