"""Decoding constraints that make a small local model answer in the DSPy adapter's format.

A 135M-parameter model does not follow DSPy's reply formats by itself. llama.cpp's server
accepts a GBNF ``grammar`` or a JSON-schema ``response_format`` per request, so the reply
is forced into the shape the adapter parses. The output fields, their order and their
types are read from the prompt DSPy built (the same reading ``OfflineLMServer`` does), so
any signature works: ChatAdapter and XMLAdapter replies get a grammar, JSONAdapter replies
a JSON schema.
"""

from __future__ import annotations

import json
import re
from typing import Any

from streamll.testing.lm_server import ChatRequest

__all__ = ["DEFAULT_MAX_FIELD_CHARS", "chat_grammar", "json_schema", "request_constraint", "xml_grammar"]

DEFAULT_MAX_FIELD_CHARS = 160
"""Longest free-text field value the constraints allow (characters); keeps replies short and bounded."""

_ONE_OF = re.compile(r"must (?:exactly match \(no extra characters\) )?(?:be )?one of: (.*)$")
_SCHEMA_NOTE = "must adhere to the JSON schema: "
_FIRST_CHAR = "[A-Za-z0-9\"'(\\u00C0-\\uFFFF]"
_MARKUP = "{}`*#"
"""Text starts like a sentence and holds no markup: a small model otherwise copies the prompt's
``{placeholders}`` or opens a code block instead of answering."""
_MAX_LINES = 2
"""Most lines a free-text field may span."""
_MAX_ITEMS = 5
_MAX_ITEM_CHARS = 40
"""Longest string inside a list or mapping (keywords, labels: short by nature)."""
"""Most items a list field may hold (a small model repeats list items until stopped)."""
_CHAT_FORBIDDEN = "\\[\\]"
"""Brackets stay out of Chat field text: ``[[`` would read as the start of a field marker."""


def _literal(text: str) -> str:
    """A GBNF string literal for ``text``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def _field_schema(request: ChatRequest, name: str, max_chars: int) -> dict[str, Any]:
    """The JSON schema of output field ``name`` as the prompt describes it (bounded strings)."""
    if name in request.field_schemas:
        return _bounded(request.field_schemas[name], max_chars)
    note = request.field_notes.get(name, "")
    annotation = request.field_types.get(name, "str")
    if note == "must be True or False" or annotation == "bool":
        return {"type": "boolean"}
    if note == "must be a single int value" or annotation == "int":
        return {"type": "integer"}
    if note == "must be a single float value" or annotation == "float":
        return {"type": "number"}
    choice = _ONE_OF.match(note)
    if choice:
        return {"enum": [value.strip() for value in choice.group(1).split(";")]}
    if note.startswith(_SCHEMA_NOTE):
        try:
            return _bounded(json.loads(note.removeprefix(_SCHEMA_NOTE)), max_chars)
        except json.JSONDecodeError:
            return {}
    return {"type": "string", "maxLength": max_chars}


def _bounded(schema: Any, max_chars: int) -> dict[str, Any]:
    """``schema`` with a ``maxLength`` on every string that has none (recursively)."""
    if not isinstance(schema, dict):
        return {}
    bounded: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            bounded[key] = {name: _bounded(sub, max_chars) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            bounded[key] = _bounded(value, min(max_chars, _MAX_ITEM_CHARS))
        elif key in ("anyOf", "oneOf", "allOf") and isinstance(value, list):
            bounded[key] = [_bounded(sub, max_chars) for sub in value]
        else:
            bounded[key] = value
    if bounded.get("type") == "string" and "maxLength" not in bounded and "enum" not in bounded:
        bounded["maxLength"] = max_chars
    if bounded.get("type") == "array" and "maxItems" not in bounded:
        bounded["maxItems"] = _MAX_ITEMS
    return bounded


class _Grammar:
    """Collects GBNF rules; ``value(schema)`` returns the name of a rule producing that value."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.rules: dict[str, str] = {}
        self.defs: dict[str, Any] = {}

    def add(self, name: str, body: str) -> str:
        self.rules.setdefault(name, body)
        return name

    def text(self, forbidden: str) -> str:
        """Free text: up to ``_MAX_LINES`` lines, each starting with a word character, no ``forbidden`` characters.

        ``max_chars`` bounds the whole value; single newlines inside a value are allowed (the
        adapters keep them), an empty line is not (it would end a ChatAdapter field).
        """
        per_line = max(1, self.max_chars // _MAX_LINES)
        line = self.add(f"line{len(forbidden)}", f"{_FIRST_CHAR} [^\\n{_MARKUP}{forbidden}]{{0,{per_line - 1}}}")
        return self.add(f"text{len(forbidden)}", f'{line} ("\\n" {line}){{0,{_MAX_LINES - 1}}}')

    def json_value(self, schema: Any, depth: int = 0) -> str:
        """A rule for a JSON value matching the common subset of JSON Schema DSPy produces."""
        schema = schema if isinstance(schema, dict) else {}
        if "$ref" in schema:
            schema = self.defs.get(str(schema["$ref"]).rsplit("/", 1)[-1], {})
        if "enum" in schema or "const" in schema:
            values = schema.get("enum", [schema.get("const")])
            return self.add(f"enum{len(self.rules)}", " | ".join(_literal(json.dumps(v)) for v in values))
        options = schema.get("anyOf") or schema.get("oneOf")
        if options:
            return self.add(
                f"any{len(self.rules)}", " | ".join(self.json_value(option, depth + 1) for option in options)
            )
        kind = schema.get("type")
        if kind == "string":
            limit = min(int(schema.get("maxLength", self.max_chars)), self.max_chars)
            return self.add(f"jstr{limit}", f'"\\"" [^"\\\\\\n]{{0,{limit}}} "\\""')
        if kind == "integer":
            return self.add("jint", '"-"? [0-9]{1,9}')
        if kind == "number":
            return self.add("jnum", '"-"? [0-9]{1,9} ("." [0-9]{1,6})?')
        if kind == "boolean":
            return self.add("jbool", '"true" | "false"')
        if kind == "null":
            return self.add("jnull", '"null"')
        if kind == "array" and depth < 4:
            items = schema.get("items", {"type": "string"})
            if isinstance(items, dict) and items.get("type") == "string" and "maxLength" not in items:
                items = {**items, "maxLength": _MAX_ITEM_CHARS}
            item = self.json_value(items, depth + 1)
            return self.add(f"arr{len(self.rules)}", f'"[" ({item} (", " {item}){{0,{_MAX_ITEMS - 1}}})? "]"')
        if kind == "object" and depth < 4 and schema.get("properties"):
            parts = [
                f"{_literal(json.dumps(name) + ': ')} {self.json_value(sub, depth + 1)}"
                for name, sub in schema["properties"].items()
            ]
            return self.add(f"obj{len(self.rules)}", '"{" ' + ' ", " '.join(parts) + ' "}"')
        return self.json_value({"type": "string"}, depth + 1)

    def field(self, schema: dict[str, Any], forbidden: str) -> str:
        """A rule for a field's value as the Chat and XML adapters parse it (strings are bare text)."""
        self.defs = schema.get("$defs", schema.get("definitions", self.defs))
        if schema.get("type") == "string" and "enum" not in schema:
            return self.text(forbidden)
        if "enum" in schema and all(isinstance(value, str) for value in schema["enum"]):
            return self.add(f"choice{len(self.rules)}", " | ".join(_literal(value) for value in schema["enum"]))
        if schema.get("type") == "boolean":
            return self.add("pybool", '"True" | "False"')
        if not schema:
            return self.text(forbidden)
        return self.json_value(schema)

    def render(self, root: str) -> str:
        return "\n".join([f"root ::= {root}", *(f"{name} ::= {body}" for name, body in self.rules.items())])


def chat_grammar(request: ChatRequest, max_chars: int = DEFAULT_MAX_FIELD_CHARS) -> str:
    """GBNF for a ChatAdapter reply: each ``[[ ## field ## ]]`` section in order, then ``[[ ## completed ## ]]``."""
    grammar = _Grammar(max_chars)
    parts = []
    for index, name in enumerate(request.output_fields):
        header = ("" if index == 0 else "\n\n") + f"[[ ## {name} ## ]]\n"
        value = grammar.field(_field_schema(request, name, max_chars), _CHAT_FORBIDDEN)
        parts.append(f"{_literal(header)} {value}")
    parts.append(_literal("\n\n[[ ## completed ## ]]"))
    return grammar.render(" ".join(parts))


def xml_grammar(request: ChatRequest, max_chars: int = DEFAULT_MAX_FIELD_CHARS) -> str:
    """GBNF for an XMLAdapter reply: ``<field>value</field>`` for each output field in order."""
    grammar = _Grammar(max_chars)
    parts = []
    for index, name in enumerate(request.output_fields):
        opening = ("" if index == 0 else "\n") + f"<{name}>"
        value = grammar.field(_field_schema(request, name, max_chars), "<>&")
        parts.append(f"{_literal(opening)} {value} {_literal(f'</{name}>')}")
    return grammar.render(" ".join(parts))


def json_schema(request: ChatRequest, max_chars: int = DEFAULT_MAX_FIELD_CHARS) -> dict[str, Any]:
    """The JSON schema of a JSONAdapter reply: an object with every output field, in order."""
    properties = {name: _field_schema(request, name, max_chars) for name in request.output_fields}
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def request_constraint(
    messages: list[dict[str, Any]], kwargs: dict[str, Any], max_chars: int = DEFAULT_MAX_FIELD_CHARS
) -> dict[str, Any]:
    """The request options (``grammar`` or ``response_format``) constraining a reply to DSPy's format.

    ``messages`` and ``kwargs`` are those of the LM call; the adapter is recognised from the
    prompt (or from a ``response_format`` the adapter set). Returns ``{}`` for prompts that no
    DSPy adapter built.
    """
    response_format = kwargs.get("response_format")
    if isinstance(response_format, type) and hasattr(response_format, "model_json_schema"):
        schema = response_format.model_json_schema()
        response_format = {"type": "json_schema", "json_schema": {"name": response_format.__name__, "schema": schema}}
    body: dict[str, Any] = {"messages": messages}
    if response_format is not None:
        body["response_format"] = response_format
    request = ChatRequest.parse(body)
    if not _built_by_dspy(request):
        return {}
    if request.adapter == "json":
        schema = json_schema(request, max_chars)
        return {"response_format": {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}}
    if request.adapter == "xml":
        return {"grammar": xml_grammar(request, max_chars)}
    return {"grammar": chat_grammar(request, max_chars)}


def _built_by_dspy(request: ChatRequest) -> bool:
    """True when the prompt carries a DSPy adapter's instructions about output fields."""
    return "Your output fields are:" in request.system_text or "Respond with" in request.user_text
