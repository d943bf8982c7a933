"""Reading the prompts DSPy's adapters build: which adapter, which fields, their types and inputs.

Everything the offline server knows about DSPy's prompt wording lives here, so a DSPy
release that rewords its prompts breaks one module, and ``tests/instrument/test_dspy_prompts.py``
(part of the DSPy version matrix) says which reading broke.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree as ET

__all__ = ["BOOL_NOTE", "FLOAT_NOTE", "INT_NOTE", "ChatRequest", "message_text", "note_choices"]

_CHAT_HEADER = re.compile(r"\[\[ ## (\w+) ## \]\]")
_FIELD_LINE = re.compile(r"^\d+\. `(\w+)` \((.+?)\):", re.MULTILINE)
_NOTE = re.compile(r"\{(\w+)\} +# note: the value you produce (.*)")
_CHAT_REQUIREMENT = re.compile(
    r"Respond with the corresponding output fields, starting with the field (.*?), and then ending with the marker for"
)
_XML_REQUIREMENT = re.compile(
    r"Respond with the corresponding output fields wrapped in XML tags (.*?)\.(?: Use this|$)", re.MULTILINE
)
_JSON_REQUIREMENT = re.compile(r"Respond with a JSON object in the following order of fields: (.*?)\.$", re.MULTILINE)
_JSON_STRUCTURE_HEADER = "Outputs will be a JSON object with the following fields."
_SCHEMA_NOTE = "must adhere to the JSON schema: "
BOOL_NOTE = "must be True or False"
INT_NOTE = "must be a single int value"
FLOAT_NOTE = "must be a single float value"
_CHOICE_NOTES = ("must exactly match (no extra characters) one of: ", "must be one of: ")
_REQUIREMENT_LINES = (
    "Respond with the corresponding output fields",
    "Respond with a JSON object in the following order of fields",
)


def message_text(message: dict[str, Any]) -> str:
    """Return the text of a chat message whose content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "".join(parts)
    return ""


def note_choices(note: str) -> list[str]:
    """The options of a ``Literal`` / enum field's type note (empty for any other note)."""
    for prefix in _CHOICE_NOTES:
        if note.startswith(prefix):
            return note[len(prefix) :].split("; ")
    return []


def _section(text: str, start: str, end: str) -> str:
    """Return the part of ``text`` between the markers ``start`` and ``end`` (empty if absent)."""
    begin = text.find(start)
    if begin < 0:
        return ""
    begin += len(start)
    stop = text.find(end, begin)
    return text[begin:] if stop < 0 else text[begin:stop]


def _system_text(messages: list[dict[str, Any]]) -> str:
    """Concatenated text of the system (and developer) messages."""
    return "\n".join(message_text(m) for m in messages if m.get("role") in ("system", "developer"))


def _user_text(messages: list[dict[str, Any]]) -> str:
    """Text of the last user message."""
    return next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")


@dataclass
class ChatRequest:
    """A parsed chat-completions request, as seen by ``responder`` callables."""

    body: dict[str, Any]
    messages: list[dict[str, Any]]
    output_fields: list[str]
    adapter: str
    inputs: dict[str, str]
    question: str
    field_types: dict[str, str] = field(default_factory=dict)
    field_notes: dict[str, str] = field(default_factory=dict)
    field_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    xml_templates: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def model(self) -> str:
        """The ``model`` named in the request body."""
        return str(self.body.get("model", ""))

    @property
    def stream(self) -> bool:
        """Whether the client asked for a streamed reply."""
        return bool(self.body.get("stream"))

    @property
    def include_usage(self) -> bool:
        """Whether the client asked for a final usage chunk."""
        options = self.body.get("stream_options") or {}
        return bool(isinstance(options, dict) and options.get("include_usage"))

    @property
    def system_text(self) -> str:
        """Concatenated text of the system (and developer) messages."""
        return _system_text(self.messages)

    @property
    def user_text(self) -> str:
        """Text of the last user message."""
        return _user_text(self.messages)

    @classmethod
    def parse(cls, body: dict[str, Any], headers: dict[str, str] | None = None) -> ChatRequest:
        """Build a ``ChatRequest`` from a request body, detecting the DSPy adapter and its fields."""
        raw_messages = body.get("messages")
        messages = [m for m in raw_messages if isinstance(m, dict)] if isinstance(raw_messages, list) else []
        system, user = _system_text(messages), _user_text(messages)
        properties, defs = _schema_parts(body.get("response_format"))
        adapter = _detect_adapter(user, body.get("response_format"))
        described = _FIELD_LINE.findall(_section(system, "Your output fields are:", "All interactions will"))
        output_fields = _output_fields(user, adapter) or list(properties) or [name for name, _ in described]
        output_fields = output_fields or ["answer"]
        notes = _field_notes(system, adapter)
        input_names = [
            name
            for name, _ in _FIELD_LINE.findall(_section(system, "Your input fields are:", "Your output fields are:"))
        ]
        inputs = _parse_inputs(user, adapter, input_names)
        return cls(
            body=body,
            messages=messages,
            output_fields=output_fields,
            adapter=adapter,
            inputs=inputs,
            question=inputs.get("question", next(iter(inputs.values()), user)),
            field_types=dict(described),
            field_notes=notes,
            field_schemas=_field_schemas(output_fields, properties, defs, notes),
            xml_templates=_xml_templates(user, output_fields) if adapter == "xml" else {},
            headers=dict(headers or {}),
        )


def _schema_parts(response_format: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the properties and definitions of a ``json_schema`` response format (empty otherwise)."""
    if not (isinstance(response_format, dict) and response_format.get("type") == "json_schema"):
        return {}, {}
    schema = (response_format.get("json_schema") or {}).get("schema") or {}
    return schema.get("properties") or {}, schema.get("$defs") or schema.get("definitions") or {}


def _detect_adapter(user: str, response_format: Any) -> str:
    """Name the DSPy adapter (``chat``, ``json`` or ``xml``) whose wording the user message carries."""
    json_match = _JSON_REQUIREMENT.search(user)
    if isinstance(response_format, dict) or (json_match and not _CHAT_REQUIREMENT.search(user)):
        return "json"
    return "xml" if _XML_REQUIREMENT.search(user) else "chat"


def _output_fields(user: str, adapter: str) -> list[str]:
    """Output field names in the order the adapter's closing instruction lists them."""
    if adapter == "json" and (match := _JSON_REQUIREMENT.search(user)):
        return re.findall(r"`(\w+)`", match.group(1))
    if adapter == "xml" and (match := _XML_REQUIREMENT.search(user)):
        return re.findall(r"`<(\w+)>`", match.group(1))
    if match := _CHAT_REQUIREMENT.search(user):
        return re.findall(r"`\[\[ ## (\w+) ## \]\]`", match.group(1))
    return []


def _field_notes(system: str, adapter: str) -> dict[str, str]:
    """The ``# note: the value you produce ...`` type notes DSPy writes per output field."""
    structure = system
    if adapter == "json" and _JSON_STRUCTURE_HEADER in system:
        structure = _json_structure_notes(system)
    notes: dict[str, str] = {}
    for name, note in _NOTE.findall(structure):
        notes.setdefault(name, note.strip())
    return notes


def _json_structure_notes(system: str) -> str:
    """Decode the JSON output-structure block of a JSONAdapter system prompt into ``{name}  # note`` lines."""
    position = system.find(_JSON_STRUCTURE_HEADER)
    brace = system.find("{", position)
    if brace < 0:
        return system
    try:
        structure, _ = json.JSONDecoder().raw_decode(system, brace)
    except json.JSONDecodeError:
        return system
    if not isinstance(structure, dict):
        return system
    return "\n".join(str(value) for value in structure.values())


def _field_schemas(
    names: list[str], properties: dict[str, Any], defs: dict[str, Any], notes: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """JSON schemas of structured output fields, from ``response_format`` or the prompt's notes."""
    schemas: dict[str, dict[str, Any]] = {}
    for name in names:
        if isinstance(properties.get(name), dict):
            schemas[name] = {**properties[name], "$defs": defs} if defs else properties[name]
        elif notes.get(name, "").startswith(_SCHEMA_NOTE):
            with contextlib.suppress(json.JSONDecodeError):
                schemas[name] = json.loads(notes[name].removeprefix(_SCHEMA_NOTE))
    return schemas


def _xml_templates(user: str, output_fields: list[str]) -> dict[str, str]:
    """The XMLAdapter's ``Use this nested XML structure`` example, per output field."""
    nested = _section(user, "Use this nested XML structure: ", "\n\n")
    if not nested:
        return {}
    try:
        root = ET.fromstring(f"<dspy_root>{nested}</dspy_root>")
    except ET.ParseError:
        return {}
    templates: dict[str, str] = {}
    for child in root:
        if child.tag in output_fields:
            templates.setdefault(child.tag, ET.tostring(child, encoding="unicode").strip())
    return templates


def _parse_inputs(user: str, adapter: str, names: list[str]) -> dict[str, str]:
    """Extract input field values from the last user message."""
    inputs: dict[str, str] = {}
    if adapter == "xml":  # DSPy 3.1+ wraps XMLAdapter inputs in tags; 3.0 writes ChatAdapter markers
        for name in names:
            match = re.search(rf"<{name}>\n?(.*?)\n?</{name}>", user, re.DOTALL)
            if match:
                inputs[name] = match.group(1).replace("&lt;", "<").replace("&amp;", "&").strip()
    if inputs:
        return inputs
    inputs = _marked_sections(user)
    return {name: value for name, value in inputs.items() if not names or name in names}


def _marked_sections(user: str) -> dict[str, str]:
    """Split a Chat/JSON user message into its ``[[ ## name ## ]]`` sections."""
    inputs: dict[str, str] = {}
    current: str | None = None
    lines: list[str] = []
    for line in user.splitlines():
        header = _CHAT_HEADER.match(line.strip())
        if header or line.startswith(_REQUIREMENT_LINES):
            if current is not None:
                inputs[current] = "\n".join(lines).strip()
            current = header.group(1) if header else None
            rest = line.strip()[header.end() :].strip() if header else ""
            lines = [rest] if rest else []
        elif current is not None:
            lines.append(line)
    if current is not None:
        inputs[current] = "\n".join(lines).strip()
    return inputs
