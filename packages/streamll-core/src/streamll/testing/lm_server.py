"""Offline OpenAI-compatible chat-completions server for exercising DSPy streaming.

``OfflineLMServer`` listens on 127.0.0.1 and answers ``POST /v1/chat/completions``
the way an OpenAI-compatible provider would: a ``chat.completion`` JSON body for
plain requests and a server-sent-event stream of ``chat.completion.chunk``
objects (HTTP/1.1 chunked transfer encoding) for ``stream: true`` requests.

Replies are formatted for the DSPy adapter that built the prompt (ChatAdapter,
JSONAdapter or XMLAdapter), so ``dspy.LM("openai/...", api_base=server.api_base)``
runs DSPy's real HTTP and streaming code paths without any network access.

Example::

    with OfflineLMServer(answers={"answer": "Paris is the capital of France."}) as server:
        with dspy.context(lm=server.lm()):
            prediction = dspy.Predict("question -> answer")(question="Capital of France?")
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree as ET
from xml.sax.saxutils import quoteattr

from streamll.testing import tool_calls

if TYPE_CHECKING:
    import dspy

__all__ = [
    "DEFAULT_ANSWERS",
    "KNOB_DEFAULTS",
    "ChatRequest",
    "OfflineLMServer",
    "StreamRecord",
    "default_value",
    "format_reply",
    "iter_sse_events",
    "tokenize",
]

_TOKEN_PATTERN = re.compile(r"\s*\S+|\s+")

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

KNOB_DEFAULTS: dict[str, Any] = {
    "answers": None,
    "responder": None,
    "one_chunk": False,
    "finish_reason": "stop",
    "max_tokens": None,
    "fail_status": None,
    "fail_times": None,
    "fail_message": None,
    "disconnect_after": None,
    "disconnect_times": None,
    "token_delay": 0.0,
    "raw_reply": None,
}
"""Reply knobs and their default values (see ``OfflineLMServer.configure``)."""

_ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("not_found_error", "model_not_found"),
    408: ("timeout_error", "timeout"),
    409: ("conflict_error", "conflict"),
    422: ("invalid_request_error", "unprocessable_entity"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", "internal_error"),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "gateway_timeout"),
}

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


def tokenize(text: str) -> list[str]:
    """Split ``text`` into word-sized tokens whose concatenation is exactly ``text``.

    Each token is a run of leading whitespace followed by one word, e.g.
    ``"Machine learning is"`` -> ``["Machine", " learning", " is"]``; trailing
    whitespace becomes its own token.
    """
    return _TOKEN_PATTERN.findall(text)


def _message_text(message: dict[str, Any]) -> str:
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


def _section(text: str, start: str, end: str) -> str:
    """Return the part of ``text`` between the markers ``start`` and ``end`` (empty if absent)."""
    begin = text.find(start)
    if begin < 0:
        return ""
    begin += len(start)
    stop = text.find(end, begin)
    return text[begin:] if stop < 0 else text[begin:stop]


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
        return "\n".join(_message_text(m) for m in self.messages if m.get("role") in ("system", "developer"))

    @property
    def user_text(self) -> str:
        """Text of the last user message."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return _message_text(message)
        return ""

    @classmethod
    def parse(cls, body: dict[str, Any], headers: dict[str, str] | None = None) -> ChatRequest:
        """Build a ``ChatRequest`` from a request body, detecting the DSPy adapter and its fields."""
        raw_messages = body.get("messages")
        messages = [m for m in raw_messages if isinstance(m, dict)] if isinstance(raw_messages, list) else []
        system = "\n".join(_message_text(m) for m in messages if m.get("role") in ("system", "developer"))
        user = next((_message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")

        response_format = body.get("response_format")
        schema_properties: dict[str, Any] = {}
        schema_defs: dict[str, Any] = {}
        if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema") or {}
            schema_properties = schema.get("properties") or {}
            schema_defs = schema.get("$defs") or schema.get("definitions") or {}

        xml_match = _XML_REQUIREMENT.search(user)
        json_match = _JSON_REQUIREMENT.search(user)
        chat_match = _CHAT_REQUIREMENT.search(user)
        if isinstance(response_format, dict) or (json_match and not chat_match):
            adapter = "json"
        elif xml_match:
            adapter = "xml"
        else:
            adapter = "chat"

        output_fields: list[str] = []
        if adapter == "json" and json_match:
            output_fields = re.findall(r"`(\w+)`", json_match.group(1))
        elif adapter == "xml" and xml_match:
            output_fields = re.findall(r"`<(\w+)>`", xml_match.group(1))
        elif chat_match:
            output_fields = re.findall(r"`\[\[ ## (\w+) ## \]\]`", chat_match.group(1))
        if not output_fields and schema_properties:
            output_fields = list(schema_properties)
        described_outputs = _FIELD_LINE.findall(_section(system, "Your output fields are:", "All interactions will"))
        if not output_fields:
            output_fields = [name for name, _ in described_outputs]
        if not output_fields:
            output_fields = ["answer"]
        field_types = {name: annotation for name, annotation in described_outputs}

        field_notes: dict[str, str] = {}
        structure = system
        if adapter == "json" and _JSON_STRUCTURE_HEADER in system:
            structure = _json_structure_notes(system)
        for name, note in _NOTE.findall(structure):
            field_notes.setdefault(name, note.strip())

        field_schemas: dict[str, dict[str, Any]] = {}
        for name in output_fields:
            if name in schema_properties and isinstance(schema_properties[name], dict):
                field_schemas[name] = (
                    {**schema_properties[name], "$defs": schema_defs} if schema_defs else schema_properties[name]
                )
            elif field_notes.get(name, "").startswith("must adhere to the JSON schema: "):
                with contextlib.suppress(json.JSONDecodeError):
                    field_schemas[name] = json.loads(field_notes[name].removeprefix("must adhere to the JSON schema: "))

        xml_templates: dict[str, str] = {}
        if adapter == "xml":
            nested = _section(user, "Use this nested XML structure: ", "\n\n")
            if nested:
                try:
                    root = ET.fromstring(f"<dspy_root>{nested}</dspy_root>")
                except ET.ParseError:
                    root = None
                if root is not None:
                    for child in root:
                        if child.tag in output_fields:
                            xml_templates.setdefault(child.tag, ET.tostring(child, encoding="unicode").strip())

        input_names = [
            name
            for name, _ in _FIELD_LINE.findall(_section(system, "Your input fields are:", "Your output fields are:"))
        ]
        inputs = _parse_inputs(user, adapter, input_names)
        if "question" in inputs:
            question = inputs["question"]
        elif inputs:
            question = next(iter(inputs.values()))
        else:
            question = user
        return cls(
            body=body,
            messages=messages,
            output_fields=output_fields,
            adapter=adapter,
            inputs=inputs,
            question=question,
            field_types=field_types,
            field_notes=field_notes,
            field_schemas=field_schemas,
            xml_templates=xml_templates,
            headers=dict(headers or {}),
        )


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


def _parse_inputs(user: str, adapter: str, names: list[str]) -> dict[str, str]:
    """Extract input field values from the last user message."""
    inputs: dict[str, str] = {}
    if adapter == "xml":
        for name in names:
            match = re.search(rf"<{name}>\n?(.*?)\n?</{name}>", user, re.DOTALL)
            if match:
                inputs[name] = match.group(1).replace("&lt;", "<").replace("&amp;", "&").strip()
        return inputs
    current: str | None = None
    lines: list[str] = []
    for line in user.splitlines():
        header = _CHAT_HEADER.match(line.strip())
        if (
            header
            or line.startswith("Respond with the corresponding output fields")
            or line.startswith("Respond with a JSON object in the following order of fields")
        ):
            if current is not None:
                inputs[current] = "\n".join(lines).strip()
            current = header.group(1) if header else None
            lines = [line.strip()[header.end() :].strip()] if header and line.strip()[header.end() :].strip() else []
        elif current is not None:
            lines.append(line)
    if current is not None:
        inputs[current] = "\n".join(lines).strip()
    return {name: value for name, value in inputs.items() if not names or name in names}


_WORDS = ("alpha", "beta", "gamma", "delta")


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
        text = {
            "date-time": "2024-01-01T00:00:00Z",
            "date": "2024-01-01",
            "time": "12:00:00",
            "uri": "https://example.com",
            "email": "user@example.com",
            "uuid": "00000000-0000-4000-8000-000000000000",
        }.get(schema.get("format", ""), "example")
        text = text.ljust(int(schema.get("minLength", 0)), "x")
        return text[: int(schema["maxLength"])] if "maxLength" in schema else text
    if kind in ("integer", "number"):
        return _bounded_number(schema, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "array":
        prefix = schema.get("prefixItems")
        if prefix:
            return [_schema_example(item, defs, depth + 1) for item in prefix]
        items = schema.get("items", {})
        count = max(int(schema.get("minItems", 0)), min(2, int(schema.get("maxItems", 2))))
        if isinstance(items, dict) and items.get("type") == "string" and not (items.keys() & {"format", "enum"}):
            return [_WORDS[i] if i < len(_WORDS) else f"item{i}" for i in range(count)]
        return [_schema_example(items, defs, depth + 1) for _ in range(count)]
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        if properties:
            return {name: _schema_example(sub, defs, depth + 1) for name, sub in properties.items()}
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra:
            return {"key": _schema_example(extra, defs, depth + 1)}
        return {"key": "value"}
    return "example"


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


def _value_to_xml(value: Any, tag: str, key: str | None = None) -> str:
    """Render a JSON-like value as nested XML the way DSPy's XMLAdapter does."""
    attrs = f" key={quoteattr(key)}" if key is not None else ""
    if isinstance(value, list):
        children = "".join(_value_to_xml(item, "item") for item in value)
        return f"<{tag}{attrs}>{children}</{tag}>" if children else f"<{tag}{attrs} />"
    if isinstance(value, dict):
        parts = []
        for name, child in value.items():
            name = str(name)
            valid = (name[:1] + name[1:].replace("-", "_").replace(".", "_")).isidentifier()
            parts.append(_value_to_xml(child, name) if valid else _value_to_xml(child, "entry", name))
        return f"<{tag}{attrs}>{''.join(parts)}</{tag}>"
    if value is None:
        return f"<{tag}{attrs} />"
    return f"<{tag}{attrs}>{_xml_escape(_value_text(value))}</{tag}>"


def _xml_escape(text: str) -> str:
    """Escape text for an XML element body."""
    return text.replace("&", "&amp;").replace("<", "&lt;")


def default_value(name: str, request: ChatRequest | None = None) -> Any:
    """Return the default reply value for output field ``name``.

    Typed fields (as DSPy describes them in the prompt) get a valid value of the
    type: ``int`` -> ``42``, ``bool`` -> ``True``, ``float`` -> ``3.14``, ``Literal``
    or enum -> the first option, JSON-schema types -> a schema-conforming value.
    Text fields get deterministic prose derived from the field name.
    """
    if request is not None:
        note = request.field_notes.get(name, "")
        if note == "must be True or False":
            return True
        if note == "must be a single int value":
            return 42
        if note == "must be a single float value":
            return 3.14
        for prefix in ("must exactly match (no extra characters) one of: ", "must be one of: "):
            if note.startswith(prefix):
                return note[len(prefix) :].split("; ")[0]
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


def _is_text_field(name: str, request: ChatRequest) -> bool:
    """Whether DSPy treats output field ``name`` as plain text."""
    annotation = request.field_types.get(name, "str")
    return (
        annotation == "str"
        and name not in request.field_notes
        and name not in request.field_schemas
        and name not in request.xml_templates
    )


def _value_text(value: Any) -> str:
    """Render a field value as DSPy's adapters render values in prompts."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _json_value(value: Any, text_field: bool) -> Any:
    """Convert a configured value into the JSON value placed in a JSONAdapter reply."""
    if text_field:
        return value if isinstance(value, str) else _value_text(value)
    if isinstance(value, str):
        if value in ("True", "False"):
            return value == "True"
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _xml_field(name: str, value: Any, request: ChatRequest) -> str:
    """Render one XMLAdapter output field; nested-structure fields get nested XML."""
    if name in request.xml_templates:
        if isinstance(value, str):
            stripped = value.strip()
            if stripped.startswith("<"):
                return stripped
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(stripped)
        if isinstance(value, (dict, list)):
            return _value_to_xml(value, name)
    return f"<{name}>\n{_xml_escape(_value_text(value))}\n</{name}>"


def format_reply(request: ChatRequest, values: dict[str, Any]) -> str:
    """Format field ``values`` as the reply text the request's DSPy adapter parses."""
    names = list(request.output_fields) + [name for name in values if name not in request.output_fields]
    if request.adapter == "json":
        payload = {name: _json_value(values[name], _is_text_field(name, request)) for name in names if name in values}
        return json.dumps(payload, indent=2, ensure_ascii=False)
    if request.adapter == "xml":
        return "\n\n".join(_xml_field(name, values[name], request) for name in names if name in values)
    parts = [f"[[ ## {name} ## ]]\n{_value_text(values[name])}" for name in names if name in values]
    parts.append("[[ ## completed ## ]]")
    return "\n\n".join(parts)


class _Server(ThreadingHTTPServer):
    """Threading HTTP server bound to an ``OfflineLMServer``."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024
    """Listen backlog: a burst of first calls (many DSPy threads starting at once) is queued, not reset."""
    owner: OfflineLMServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore client disconnects; report anything else on stderr."""
        import sys

        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError, OSError)):
            return
        super().handle_error(request, client_address)


class _Disconnect(Exception):
    """Raised inside the handler to drop the connection abruptly."""


@dataclass
class StreamRecord:
    """What the server sent on one streamed reply: content pieces sent of the reply's total, and how it ended."""

    pieces: int
    sent: int = 0
    finished: bool = False
    """True when the whole reply (finish chunk and ``[DONE]``) was written."""
    client_closed: bool = False
    """True when a write failed because the client closed the connection mid-reply."""
    dropped: bool = False
    """True when the ``disconnect_after`` knob cut the reply."""

    @property
    def ended(self) -> bool:
        """The server is done with this stream (finished, cut by the client, or dropped by a knob)."""
        return self.finished or self.client_closed or self.dropped


class _Handler(BaseHTTPRequestHandler):
    """Request handler implementing the OpenAI chat-completions surface."""

    protocol_version = "HTTP/1.1"
    server_version = "OfflineLM/1.0"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the server quiet."""

    def setup(self) -> None:
        """Register the connection so ``stop`` can close it."""
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        """Unregister the connection."""
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    # -- plumbing -----------------------------------------------------------------

    def _read_body(self) -> bytes:
        """Read the request body (Content-Length or chunked)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = bytearray()
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(self, status: int, payload: Any) -> None:
        """Send a complete JSON response with Content-Length."""
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error_json(self, status: int, message: str) -> None:
        """Send an OpenAI-style error body."""
        kind, code = _ERROR_TYPES.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", str(status))
        )
        self._send_json(status, {"error": {"message": message, "type": kind, "param": None, "code": code}})

    def _write_chunk(self, data: bytes) -> None:
        """Write one HTTP/1.1 chunk."""
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _write_event(self, payload: Any) -> None:
        """Write one server-sent event carrying ``payload`` (a JSON object or ``[DONE]``)."""
        text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        self._write_chunk(f"data: {text}\n\n".encode())

    def _drop_connection(self) -> None:
        """Close the socket without finishing the response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- routes -------------------------------------------------------------------

    def do_GET(self) -> None:
        """Serve ``/v1/models`` and a health probe."""
        path = self.path.split("?", 1)[0].rstrip("/")
        if path in ("/v1/models", "/models"):
            models = self.server.owner.models()
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [{"id": name, "object": "model", "created": 0, "owned_by": "offline"} for name in models],
                },
            )
        elif path in ("", "/health", "/v1"):
            self._send_json(200, {"status": "ok"})
        else:
            self._send_error_json(404, f"Unknown path: {self.path}")

    def do_POST(self) -> None:
        """Serve ``/v1/chat/completions``."""
        path = self.path.split("?", 1)[0].rstrip("/")
        raw = self._read_body()
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._send_error_json(404, f"Unknown path: {self.path}")
            return
        try:
            body = json.loads(raw.decode("utf-8") or "null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._send_error_json(400, f"Request body is not valid JSON: {exc}")
            return
        if not isinstance(body, dict):
            self._send_error_json(400, "Request body must be a JSON object.")
            return
        owner = self.server.owner
        owner._record(body)
        if not isinstance(body.get("messages"), list):
            self._send_error_json(400, "'messages' is a required array.")
            return
        knobs = owner._take_knobs()
        if knobs["fail_status"] is not None:
            status = int(knobs["fail_status"])
            message = knobs["fail_message"] or f"Offline LM server configured to fail with HTTP {status}."
            self._send_error_json(status, message)
            return
        request = ChatRequest.parse(body, {key: value for key, value in self.headers.items()})
        try:
            if (calls := tool_calls.tool_calls_for(request, knobs)) is not None:  # native tool calls
                tool_calls.send(self, request, calls, owner._next_id(), knobs)
                return
            content = owner._reply_text(request, knobs)
        except Exception as exc:  # a failing responder becomes an HTTP 500
            self._send_error_json(500, f"Responder failed: {type(exc).__name__}: {exc}")
            return
        tokens = tokenize(content)
        limits = [knobs["max_tokens"], request.body.get("max_tokens"), request.body.get("max_completion_tokens")]
        numeric = [int(v) for v in limits if isinstance(v, int) and not isinstance(v, bool)]
        limit = min(numeric) if numeric else None
        finish_reason = knobs["finish_reason"]
        if limit is not None and len(tokens) > limit:
            tokens = tokens[: max(int(limit), 0)]
            finish_reason = "length"
        usage = {
            "prompt_tokens": sum(len(tokenize(_message_text(m))) for m in request.messages),
            "completion_tokens": len(tokens),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        completion_id = owner._next_id()
        model = request.model or "offline"
        if request.stream:
            self._stream(request, tokens, finish_reason, usage, completion_id, model, knobs)
        else:
            self._complete(request, tokens, finish_reason, usage, completion_id, model, knobs)

    def _complete(
        self,
        request: ChatRequest,
        tokens: list[str],
        finish_reason: str,
        usage: dict[str, int],
        completion_id: str,
        model: str,
        knobs: dict[str, Any],
    ) -> None:
        """Send a non-streaming ``chat.completion`` object."""
        n = request.body.get("n") or 1
        n = n if isinstance(n, int) and 1 <= n <= 16 else 1
        payload = {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": index,
                    "message": {"role": "assistant", "content": "".join(tokens), "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
                for index in range(n)
            ],
            "usage": usage,
        }
        if knobs["disconnect_after"] is not None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self._drop_connection()
            return
        self._send_json(200, payload)

    def _stream(
        self,
        request: ChatRequest,
        tokens: list[str],
        finish_reason: str,
        usage: dict[str, int],
        completion_id: str,
        model: str,
        knobs: dict[str, Any],
    ) -> None:
        """Send a ``chat.completion.chunk`` SSE stream."""
        created = int(time.time())
        delay = float(knobs["token_delay"] or 0.0)
        disconnect_after = knobs["disconnect_after"]

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            """Build one ``chat.completion.chunk`` object."""
            return {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }

        pieces = ["".join(tokens)] if knobs["one_chunk"] and tokens else tokens
        record = self.server.owner._record_stream(len(pieces))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            self._write_event(chunk({"role": "assistant", "content": ""}))
            for count, piece in enumerate(pieces):
                if disconnect_after is not None and count >= disconnect_after:
                    raise _Disconnect
                if delay > 0:
                    time.sleep(delay)
                self._write_event(chunk({"content": piece}))
                record.sent += 1
            if disconnect_after is not None:
                raise _Disconnect
            if delay > 0:
                time.sleep(delay)
            self._write_event(chunk({}, finish_reason))
            if request.include_usage:
                self._write_event({**chunk({}), "choices": [], "usage": usage})
            self._write_event("[DONE]")
            self._write_chunk(b"")
            record.finished = True
        except _Disconnect:
            record.dropped = True
            self._drop_connection()
        except OSError:
            record.client_closed = True
            self.close_connection = True


class OfflineLMServer:
    """Offline OpenAI-compatible streaming chat-completions server.

    Reply knobs (``answers``, ``responder``, ``one_chunk``, ``finish_reason``,
    ``max_tokens``, ``fail_status``, ``fail_times``, ``fail_message``,
    ``disconnect_after``, ``disconnect_times``, ``token_delay``, ``raw_reply``) are plain attributes
    that may be set at any time, directly or through ``configure``; each request
    reads them once when it arrives.
    """

    answers: dict[str, Any]
    responder: Callable[[ChatRequest], dict[str, Any]] | None
    one_chunk: bool
    finish_reason: str
    max_tokens: int | None
    fail_status: int | None
    fail_times: int | None
    fail_message: str | None
    disconnect_after: int | None
    disconnect_times: int | None
    token_delay: float
    raw_reply: str | None

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        answers: dict[str, Any] | None = None,
        responder: Callable[[ChatRequest], dict[str, Any]] | None = None,
        **knobs: Any,
    ) -> None:
        """Create a stopped server; ``knobs`` are passed to ``configure``."""
        self.host = host
        self._requested_port = port
        self._lock = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._counter = 0
        self._connections: set[socket.socket] = set()
        self.requests: list[dict[str, Any]] = []
        self.streams: list[StreamRecord] = []
        """One record per streamed reply, in arrival order (what was sent, how it ended)."""
        self.reset()
        self.answers = dict(answers or {})
        self.responder = responder
        if knobs:
            self.configure(**knobs)

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> OfflineLMServer:
        """Bind the socket and serve on a daemon thread; returns ``self``."""
        if self._server is not None:
            return self
        server = _Server((self.host, self._requested_port), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"offline-lm-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        server, thread = self._server, self._thread
        self._server = None
        self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> OfflineLMServer:
        """Start the server."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop the server."""
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is accepting connections."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound TCP port (the requested port before ``start``)."""
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        """OpenAI-style API base, ``http://HOST:PORT/v1``."""
        return f"{self.base_url}/v1"

    def lm(self, model: str = "offline", **kwargs: Any) -> dspy.LM:
        """Return a ``dspy.LM`` pointed at this server (``openai/<model>``, no cache, no retries).

        Any keyword argument (``engine="litellm"``, ``cache=True``, ...) overrides the defaults.
        """
        if self._server is None:
            raise RuntimeError("OfflineLMServer is not running; call start() or use it as a context manager")
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import dspy

        options: dict[str, Any] = {"api_base": self.api_base, "api_key": "offline", "cache": False, "num_retries": 0}
        options.update(kwargs)
        name = model if model.startswith("openai/") else f"openai/{model}"
        return dspy.LM(name, **options)

    # -- knobs --------------------------------------------------------------------

    def configure(self, **knobs: Any) -> OfflineLMServer:
        """Set reply knobs for following requests; unknown names raise ``TypeError``. Returns ``self``."""
        unknown = sorted(set(knobs) - set(KNOB_DEFAULTS))
        if unknown:
            raise TypeError(f"Unknown OfflineLMServer knob(s): {', '.join(unknown)}")
        with self._lock:
            for name, value in knobs.items():
                if name == "answers":
                    value = dict(value or {})
                setattr(self, name, value)
        return self

    def reset(self) -> OfflineLMServer:
        """Restore every knob to its default and forget recorded requests. Returns ``self``."""
        with self._lock:
            for name, value in KNOB_DEFAULTS.items():
                setattr(self, name, {} if name == "answers" else value)
            self.requests.clear()
            self.streams.clear()
        return self

    def knobs(self) -> dict[str, Any]:
        """Return a snapshot of the current reply knobs."""
        with self._lock:
            snapshot = {name: getattr(self, name) for name in KNOB_DEFAULTS}
            snapshot["answers"] = dict(snapshot["answers"] or {})
            return snapshot

    def _take_knobs(self) -> dict[str, Any]:
        """Snapshot the knobs for one request, consuming one use of ``fail_times`` / ``disconnect_times``.

        ``fail_times=N`` limits ``fail_status`` to the next N requests and
        ``disconnect_times=N`` limits ``disconnect_after`` likewise (a cut that a
        retry recovers from); ``None`` means every request.
        """
        with self._lock:
            knobs = self.knobs()
            for knob, times in (("fail_status", "fail_times"), ("disconnect_after", "disconnect_times")):
                remaining = getattr(self, times)
                if knobs[knob] is None or remaining is None:
                    continue
                if remaining <= 0:
                    knobs[knob] = None
                    continue
                setattr(self, times, remaining - 1)
                if remaining == 1:
                    setattr(self, knob, None)
                    setattr(self, times, None)
        return knobs

    # -- requests -----------------------------------------------------------------

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        """Add or remove an open client connection."""
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _record_stream(self, pieces: int) -> StreamRecord:
        """Start the record of one streamed reply."""
        record = StreamRecord(pieces)
        with self._lock:
            self.streams.append(record)
        return record

    def _record(self, body: dict[str, Any]) -> None:
        """Append a received request body and wake waiters."""
        with self._lock:
            self.requests.append(body)
            self._lock.notify_all()

    def _next_id(self) -> str:
        """Return a fresh completion id."""
        with self._lock:
            self._counter += 1
            return f"chatcmpl-offline-{self._counter}"

    @property
    def last_request(self) -> dict[str, Any] | None:
        """The most recent request body, if any."""
        with self._lock:
            return self.requests[-1] if self.requests else None

    def parsed_requests(self) -> list[ChatRequest]:
        """Every recorded request body parsed into a ``ChatRequest``."""
        with self._lock:
            bodies = list(self.requests)
        return [ChatRequest.parse(body) for body in bodies]

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` requests were received; returns False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.requests) >= count, timeout=timeout)

    def models(self) -> list[str]:
        """Model names reported by ``GET /v1/models`` (``offline`` plus every model requested)."""
        with self._lock:
            seen = [str(body.get("model")) for body in self.requests if body.get("model")]
        return list(dict.fromkeys(["offline", *seen]))

    # -- replies ------------------------------------------------------------------

    def reply_values(self, request: ChatRequest, knobs: dict[str, Any] | None = None) -> dict[str, Any]:
        """Return the field values for ``request``: responder, then answers, then defaults."""
        knobs = knobs if knobs is not None else self.knobs()
        values: dict[str, Any] = {}
        answers = knobs["answers"] or {}
        produced = knobs["responder"](request) if knobs["responder"] is not None else {}
        for name in request.output_fields:
            if produced and name in produced:
                values[name] = produced[name]
            elif name in answers:
                values[name] = answers[name]
            else:
                values[name] = default_value(name, request)
        return values

    def _reply_text(self, request: ChatRequest, knobs: dict[str, Any]) -> str:
        """Return the assistant content for ``request``."""
        if knobs["raw_reply"] is not None:
            return str(knobs["raw_reply"])
        return format_reply(request, self.reply_values(request, knobs))

    def __repr__(self) -> str:
        """Short description with address and state."""
        state = "running" if self.running else "stopped"
        return f"OfflineLMServer({self.api_base!r}, {state}, requests={len(self.requests)})"


def iter_sse_events(lines: Iterator[bytes]) -> Iterator[Any]:
    """Decode ``data:`` events from an SSE byte-line iterator (``[DONE]`` is yielded as the string)."""
    for raw in lines:
        line = raw.decode("utf-8").strip()
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        yield data if data == "[DONE]" else json.loads(data)
