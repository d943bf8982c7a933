"""Typed output fields: their type's name and their parsed value, for token events.

A field whose annotation is not ``str`` streams the adapter's syntax (``True``,
``["a", "b"]``, ``<item>a</item>``). Its token events say the type
(``data["field_type"]``, e.g. ``"bool"``, ``"list[str]"``) and its last token
carries the parsed value in JSON-encodable form (``data["value"]``), parsed from
the reply by the adapter's own ``parse`` (only DSPy's built-in ones: a user's
adapter may count or log its calls) on a signature holding just those fields.
"""

from __future__ import annotations

import json
import logging
import re
import weakref
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("streamll")

_QUALIFIED_RE = re.compile(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)")
_reduced: weakref.WeakKeyDictionary[Any, dict[frozenset[str], Any]] = weakref.WeakKeyDictionary()


def _str_like() -> tuple[type, ...]:
    try:
        from dspy.adapters.types.reasoning import Reasoning
    except ImportError:  # dspy without dspy.Reasoning
        return (str,)
    return (str, Reasoning)


def type_name(annotation: Any) -> str | None:
    """``"bool"``, ``"list[str]"``, ``"Literal['a', 'b']"``; None for text fields (``str``, ``dspy.Reasoning``)."""
    if annotation in _str_like():
        return None
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__name__
    text = repr(annotation).replace("typing.", "")
    return _QUALIFIED_RE.sub(r"\1", text)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (pydantic models dumped, enums by value); text where nothing fits."""
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(value, fallback=repr)


def _builtin_parse(adapter: Any) -> bool:
    """True when ``adapter.parse`` is one of DSPy's own (pure) parse methods."""
    import dspy

    parse = getattr(type(adapter), "parse", None)
    builtins = [
        getattr(getattr(dspy, name, None), "parse", None) for name in ("ChatAdapter", "JSONAdapter", "XMLAdapter")
    ]
    return parse is not None and any(parse is known for known in builtins if known is not None)


def _reduced_signature(signature: Any, fields: frozenset[str]) -> Any:
    """``signature`` with only ``fields`` as outputs (cached per signature class)."""
    try:
        known = _reduced.setdefault(signature, {})
    except TypeError:
        known = {}
    if fields not in known:
        reduced = signature
        for name in list(signature.output_fields):
            if name not in fields:
                reduced = reduced.delete(name)
        known[fields] = reduced
    return known[fields]


def value_parser(adapter: Any, signature: Any, fields: frozenset[str]) -> Callable[[str], dict[str, Any]] | None:
    """A function from the whole reply text to the parsed values of ``fields`` (JSON-encodable), or None."""
    if not fields or not _builtin_parse(adapter):
        return None
    try:
        reduced = _reduced_signature(signature, fields)
    except Exception:
        logger.debug("streamll: no value parser for %s", sorted(fields), exc_info=True)
        return None

    def parse(text: str) -> dict[str, Any]:
        try:
            parsed = adapter.parse(reduced, text)
        except Exception:  # the adapter cannot parse this reply: DSPy will say so itself
            return {}
        values = {}
        for name in fields:
            if name in parsed:
                try:
                    values[name] = jsonable(parsed[name])
                except Exception:
                    continue
        return values

    return parse


def replay_text(value: Any) -> str:
    """A cached field's value as a reply's text: objects and lists as JSON (as the LM wrote them), the rest as text."""
    if isinstance(value, str):
        return value
    try:
        data = jsonable(value)
        if isinstance(data, (dict, list)):
            return json.dumps(data, ensure_ascii=False)
    except Exception:  # a value pydantic cannot dump: its text, as before
        logger.debug("streamll: a cached value has no JSON form", exc_info=True)
    return str(value)


def value_extra(value: Any) -> dict[str, Any] | None:
    """A typed field's ``{"value": ...}`` entry for its last token; ``None`` when pydantic cannot dump it."""
    try:
        return {"value": jsonable(value)}
    except Exception:
        return None


__all__ = ["jsonable", "replay_text", "type_name", "value_extra", "value_parser"]
