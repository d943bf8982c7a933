"""Formatting reply values as the text each DSPy adapter parses, and splitting it into tokens."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any
from xml.sax.saxutils import quoteattr

from streamll.testing.lm_server.prompt import ChatRequest
from streamll.testing.lm_server.state import Knobs
from streamll.testing.lm_server.values import field_values

__all__ = ["format_reply", "reply_text", "tokenize"]

_TOKEN_PATTERN = re.compile(r"\s*\S+|\s+")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into word-sized tokens whose concatenation is exactly ``text``.

    Each token is a run of leading whitespace followed by one word, e.g.
    ``"Machine learning is"`` -> ``["Machine", " learning", " is"]``; trailing
    whitespace becomes its own token.
    """
    return _TOKEN_PATTERN.findall(text)


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


def reply_text(request: ChatRequest, knobs: Knobs) -> str:
    """The assistant content for ``request``: ``raw_reply`` verbatim, else the formatted field values."""
    if knobs.raw_reply is not None:
        return str(knobs.raw_reply)
    return format_reply(request, field_values(request, knobs.answers or {}, knobs.responder))
