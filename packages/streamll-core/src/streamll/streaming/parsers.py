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

import re
from collections.abc import Iterable
from typing import Protocol

Op = tuple[str, ...]

HEADER_RE = re.compile(r"\[\[ ## (\w+) ## \]\]")
HEADER_PREFIX = "[[ ## "
HEADER_SUFFIX = " ## ]]"
WORD_RE = re.compile(r"\w+")
LINE_BREAK_RE = re.compile("(\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029])")
"""The boundaries ``str.splitlines()`` uses (ChatAdapter parses line by line)."""


class FieldParser(Protocol):
    """What the bridge needs from a parser."""

    def feed(self, text: str) -> list[Op]:
        """Operations for the next chunk of reply text."""
        ...

    def finish(self) -> list[Op]:
        """Operations at the end of the reply (closes an open field)."""
        ...


class Stripper:
    """Drops a field's leading whitespace and holds trailing whitespace until more text follows.

    Applying it to the pieces of a value yields exactly ``value.strip()``.
    """

    __slots__ = ("held", "started")

    def __init__(self) -> None:
        self.started = False
        self.held = ""

    def push(self, text: str) -> str:
        """The part of ``text`` that certainly belongs to the stripped value."""
        if not self.started:
            text = text.lstrip()
            if not text:
                return ""
            self.started = True
        body = text.rstrip()
        if not body:
            self.held += text
            return ""
        out = self.held + body
        self.held = text[len(body) :]
        return out


class _Sections:
    """Field bookkeeping shared by the parsers: which field is open, first occurrence wins."""

    def __init__(self, fields: Iterable[str], *, strip: bool) -> None:
        self.fields = set(fields)
        self.seen: set[str] = set()
        self.current: str | None = None
        self.strip = strip
        self._stripper = Stripper()

    def open(self, name: str, ops: list[Op]) -> None:
        self.close(ops)
        if name in self.fields and name not in self.seen:
            self.seen.add(name)
            self.current = name
            self._stripper = Stripper()
            ops.append(("open", name))

    def text(self, piece: str, ops: list[Op]) -> None:
        if self.current is None or not piece:
            return
        if self.strip:
            piece = self._stripper.push(piece)
        if piece:
            ops.append(("text", self.current, piece))

    def close(self, ops: list[Op]) -> None:
        if self.current is not None:
            ops.append(("close", self.current))
            self.current = None


class ChatParser:
    """ChatAdapter replies: ``[[ ## field ## ]]`` header lines start sections."""

    def __init__(self, fields: Iterable[str]) -> None:
        self._sections = _Sections(fields, strip=True)
        self._line = ""
        self._mode = "start"  # start: deciding whether the line is a header; content; header
        self._header: re.Match[str] | None = None
        self._carry_cr = False

    def feed(self, text: str) -> list[Op]:
        ops: list[Op] = []
        if self._carry_cr:
            text = "\r" + text
            self._carry_cr = False
        if text.endswith("\r"):
            text = text[:-1]
            self._carry_cr = True
        for part in LINE_BREAK_RE.split(text):
            if not part:
                continue
            if LINE_BREAK_RE.fullmatch(part):
                self._end_line(ops)
            else:
                self._segment(part, ops)
        return ops

    def finish(self) -> list[Op]:
        ops: list[Op] = []
        if self._carry_cr:
            self._carry_cr = False
            self._end_line(ops)
        if self._mode == "header":
            self._header_rest(ops)
        elif self._line:
            self._sections.text(self._line, ops)
        self._line, self._mode = "", "start"
        self._sections.close(ops)
        return ops

    def _segment(self, part: str, ops: list[Op]) -> None:
        if self._mode == "content":
            self._sections.text(part, ops)
            return
        self._line += part
        if self._mode == "header":
            return
        stripped = self._line.strip()
        if not stripped:
            return
        match = HEADER_RE.match(stripped)
        if match:
            self._mode, self._header = "header", match
            self._sections.open(match.group(1), ops)
            if self._sections.current is None:
                self._sections.close(ops)
            return
        if not _could_become_header(stripped):
            self._mode = "content"
            self._sections.text(self._line, ops)
            self._line = ""

    def _end_line(self, ops: list[Op]) -> None:
        if self._mode == "header":
            wrote = self._header_rest(ops)
            if wrote:
                self._sections.text("\n", ops)
        else:
            self._sections.text(self._line + "\n", ops)
        self._line, self._mode = "", "start"

    def _header_rest(self, ops: list[Op]) -> bool:
        assert self._header is not None
        rest = self._line[self._header.end() :].strip()  # ChatAdapter slices the unstripped line the same way
        self._sections.text(rest, ops)
        return bool(rest)


def _could_become_header(stripped: str) -> bool:
    """True while ``stripped`` (a line's start) may still turn into a ``[[ ## name ## ]]`` header."""
    if len(stripped) <= len(HEADER_PREFIX):
        return HEADER_PREFIX.startswith(stripped)
    if not stripped.startswith(HEADER_PREFIX):
        return False
    name = WORD_RE.match(stripped, len(HEADER_PREFIX))
    if name is None:
        return False
    return HEADER_SUFFIX.startswith(stripped[name.end() :])


JSON_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class JSONParser:
    """JSONAdapter replies: one JSON object; string values are decoded as they stream."""

    def __init__(self, fields: Iterable[str]) -> None:
        self._sections = _Sections(fields, strip=False)
        self._state = "before"
        self._key = ""
        self._escape = ""
        self._raw = ""
        self._depth = 0
        self._raw_in_string = False
        self._raw_escape = False
        self._high_surrogate: str | None = None

    def feed(self, text: str) -> list[Op]:
        ops: list[Op] = []
        pending: list[str] = []
        for char in text:
            state = self._state
            if state == "string_value":
                if self._escape:
                    self._escape += char
                    decoded = self._decode_escape()
                    if decoded is not None:
                        pending.append(decoded)
                elif char == "\\":
                    self._escape = "\\"
                elif char == '"':
                    self._flush(pending, ops)
                    self._sections.close(ops)
                    self._state = "after_value"
                else:
                    pending.append(char)
                continue
            self._flush(pending, ops)
            self._step(char, ops)
        self._flush(pending, ops)
        return ops

    def finish(self) -> list[Op]:
        ops: list[Op] = []
        if self._state == "raw_value":
            self._end_raw(ops)
        self._sections.close(ops)
        return ops

    def _flush(self, pending: list[str], ops: list[Op]) -> None:
        if pending:
            self._sections.text("".join(pending), ops)
            pending.clear()

    def _decode_escape(self) -> str | None:
        escape = self._escape
        if len(escape) == 2 and escape[1] != "u":
            self._escape = ""
            return JSON_ESCAPES.get(escape[1], escape[1])
        if len(escape) < 6:
            return None
        self._escape = ""
        try:
            char = chr(int(escape[2:], 16))
        except ValueError:
            return escape
        if 0xD800 <= ord(char) <= 0xDBFF:
            self._high_surrogate = char
            return None
        if 0xDC00 <= ord(char) <= 0xDFFF and self._high_surrogate is not None:
            high, self._high_surrogate = self._high_surrogate, None
            return (high + char).encode("utf-16", "surrogatepass").decode("utf-16")
        return char

    def _step(self, char: str, ops: list[Op]) -> None:
        state = self._state
        if state == "before":
            if char == "{":
                self._state = "key_or_end"
        elif state == "key_or_end":
            if char == '"':
                self._state, self._key = "key", ""
            elif char == "}":
                self._state = "done"
        elif state == "key":
            if self._escape:
                self._escape += char
                decoded = self._decode_escape()
                if decoded is not None:
                    self._key += decoded
            elif char == "\\":
                self._escape = "\\"
            elif char == '"':
                self._state = "colon"
            else:
                self._key += char
        elif state == "colon":
            if char == ":":
                self._state = "value_start"
        elif state == "value_start":
            if char.isspace():
                return
            self._sections.open(self._key, ops)
            if char == '"':
                self._state = "string_value"
            else:
                self._state, self._raw, self._depth = "raw_value", "", 0
                self._raw_in_string = self._raw_escape = False
                self._raw_char(char, ops)
        elif state == "raw_value":
            self._raw_char(char, ops)
        elif state == "after_value":
            if char == ",":
                self._state = "key_or_end"
            elif char == "}":
                self._state = "done"

    def _raw_char(self, char: str, ops: list[Op]) -> None:
        if self._raw_in_string:
            if self._raw_escape:
                self._raw_escape = False
            elif char == "\\":
                self._raw_escape = True
            elif char == '"':
                self._raw_in_string = False
        elif char == '"':
            self._raw_in_string = True
        elif char in "[{":
            self._depth += 1
        elif char in "]}":
            if self._depth == 0:
                self._end_raw(ops)
                self._state = "done" if char == "}" else "after_value"
                return
            self._depth -= 1
        elif char == "," and self._depth == 0:
            self._end_raw(ops)
            self._state = "key_or_end"
            return
        self._raw += char

    def _end_raw(self, ops: list[Op]) -> None:
        self._sections.text(self._raw.strip(), ops)
        self._sections.close(ops)
        self._raw = ""


from streamll.streaming.xml_parser import XMLParser, xml_rules_are_legacy  # noqa: E402 - after _Sections

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
    "Stripper",
    "XMLParser",
    "adapter_kind",
    "parser_for",
    "xml_rules_are_legacy",
]
