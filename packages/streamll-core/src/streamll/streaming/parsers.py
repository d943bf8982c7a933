"""Incremental parsers that find output-field text in an LM reply as it streams.

Each parser follows the parsing rules of one DSPy adapter, so that the text
streamed for a field equals the value the adapter parses at the end
(ChatAdapter and XMLAdapter strip a field's surrounding whitespace, JSONAdapter
decodes JSON string escapes). ``feed()`` takes the next chunk of reply text and
returns operations:

* ``("open", field)``: the field's value begins,
* ``("text", field, piece)``: more of its text,
* ``("close", field)``: its value is complete.

Parsers report every output field; choosing which to stream is the caller's job.
"""

from __future__ import annotations

from collections.abc import Iterable

from streamll.streaming.chat_parser import ChatParser
from streamll.streaming.json_parser import JSONParser
from streamll.streaming.sections import FieldParser, Op, Stripper
from streamll.streaming.xml_parser import XMLParser, xml_rules_are_legacy

PARSERS: dict[str, type[ChatParser] | type[XMLParser] | type[JSONParser]] = {
    "chat": ChatParser,
    "json": JSONParser,
    "xml": XMLParser,
}


def parser_for(adapter_kind: str, fields: Iterable[str]) -> FieldParser:
    """A parser for replies in ``adapter_kind`` format ("chat", "json" or "xml")."""
    return PARSERS.get(adapter_kind, ChatParser)(fields)


def adapter_kind(adapter: object) -> str:
    """The reply format a DSPy adapter expects: "json", "xml" or "chat"."""
    for cls in type(adapter).__mro__:
        name = cls.__name__
        if name == "JSONAdapter":
            return "json"
        if name == "XMLAdapter":
            return "xml"
        if name == "ChatAdapter":
            return "chat"
    return "chat"


__all__ = [
    "ChatParser",
    "FieldParser",
    "JSONParser",
    "Op",
    "Stripper",
    "XMLParser",
    "adapter_kind",
    "parser_for",
    "xml_rules_are_legacy",
]
