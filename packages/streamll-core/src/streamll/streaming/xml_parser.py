"""Incremental parser for XMLAdapter replies (see :mod:`streamll.streaming.parsers`).

Follows the installed DSPy's XMLAdapter: from dspy 3.3 values are XML text
(entities decoded, line ends normalized, comments dropped, CDATA as text) and a
value with child elements is its text and the children as ElementTree writes
them (``<br/>`` becomes ``<br />``; text after a child stays escaped; nothing is
stripped); before, a regular expression keeps values raw.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from streamll.streaming.sections import Op, Sections

XML_ENTITIES = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
CDATA = "<![CDATA["
SKIPPED = (("<!--", "-->"), (CDATA, "]]>"), ("<?", "?>"))
"""Markup in a value that ElementTree does not keep as an element: comments and processing instructions are
dropped, a CDATA section is its text."""
TAG_RE = re.compile(r"<\s*(/?)\s*([A-Za-z_][\w.\-]*)[^>]*?(/?)\s*>")
LEGACY_TAG_RE = re.compile(r"<(/?)(\w+)>()")
"""dspy < 3.3 reads only bare tags (``<name>``, ``</name>``): no attributes, spaces or self-closing ones."""


class XMLParser:
    """XMLAdapter replies: ``<field>value</field>`` elements at the top level.

    ``legacy`` follows the XMLAdapter of dspy < 3.3 (a regular expression:
    values are raw text, no entity decoding, line ends kept); by default the
    installed DSPy's rules are used.
    """

    def __init__(self, fields: Iterable[str], *, legacy: bool | None = None) -> None:
        """Parse replies for the output ``fields``."""
        self._legacy = xml_rules_are_legacy() if legacy is None else legacy
        self._sections = Sections(fields, strip=True)
        self._buffer = ""
        self._skip: str | None = None  # a non-field element whose content is ignored
        self._skip_depth = 0
        self._carry_cr = False
        self._child = ""  # the markup of a child element of the open field, until it ends
        self._child_depth = 0
        self._after_child = False  # a child ended in the open field: its text is written escaped from here

    def feed(self, text: str) -> list[Op]:
        """Operations for the next chunk of reply text."""
        if self._legacy:
            self._buffer += text
        else:
            if self._carry_cr:
                text = "\r" + text
                self._carry_cr = False
            if text.endswith("\r"):
                text, self._carry_cr = text[:-1], True
            self._buffer += text.replace("\r\n", "\n").replace("\r", "\n")
        ops: list[Op] = []
        self._scan(ops, final=False)
        return ops

    def finish(self) -> list[Op]:
        """Operations at the end of the reply (closes an open field)."""
        ops: list[Op] = []
        if self._carry_cr:
            self._buffer += "\n"
        self._scan(ops, final=True)
        if self._child_depth:  # cut inside a child element: DSPy rejects the reply, its text stays as sent
            self._sections.keep(self._child, ops)
        self._sections.close(ops)
        return ops

    def _scan(self, ops: list[Op], *, final: bool) -> None:
        buffer = self._buffer
        position = 0
        while position < len(buffer):
            current = self._sections.current
            if current is not None and self._child_depth:
                position, wait = self._scan_child(buffer, position, ops, final=final)
            elif current is not None and not self._legacy:
                position, wait = self._scan_value(buffer, position, current, ops, final=final)
            elif current is not None:
                position, wait = self._scan_section(buffer, position, current, ops, final=final)
            else:
                position, wait = self._scan_between(buffer, position, ops)
            if wait:
                break
        self._buffer = buffer[position:]

    def _scan_section(
        self, buffer: str, position: int, current: str, ops: list[Op], *, final: bool
    ) -> tuple[int, bool]:
        """One step inside the open section: text, an entity, its closing tag or other markup as text.

        Returns the new position and whether to wait for more input (the rest may be an incomplete tag).
        """
        cut = buffer.find("<", position) if self._legacy else _next_special(buffer, position)
        if cut == -1:
            cut = len(buffer)
        if cut > position:
            self._sections.text(buffer[position:cut], ops)
            return cut, False
        if buffer.startswith("&", position):
            end = buffer.find(";", position)
            if end == -1:
                if final or len(buffer) - position > 12:
                    self._value_text("&", ops)
                    return position + 1, False
                return position, True
            self._value_text(_decode_entity(buffer[position : end + 1]), ops)
            return end + 1, False
        closing = f"</{current}"
        if buffer.startswith(closing, position):
            after = position + len(closing)
            if not self._legacy:  # XML allows spaces before the ">" of a closing tag
                while after < len(buffer) and buffer[after].isspace():
                    after += 1
            if buffer.startswith(">", after):
                self._sections.close(ops)
                return after + 1, False
            if after == len(buffer) and not final:
                return position, True
        elif closing.startswith(buffer[position:]) and not final:
            return position, True
        end = buffer.find(">", position)
        after = buffer.find("<", position + 1)
        if after != -1 and (end == -1 or after < end):  # a "<" that starts no markup ("x < 5") is text
            self._sections.text(buffer[position:after], ops)
            return after, False
        if end == -1 and not final:
            return position, True
        markup = buffer[position : (end + 1 if end != -1 else len(buffer))]
        self._sections.text(markup, ops)
        return position + len(markup), False

    def _scan_value(self, buffer: str, position: int, current: str, ops: list[Op], *, final: bool) -> tuple[int, bool]:
        """:meth:`_scan_section` under dspy >= 3.3 rules: text, entities, comments, CDATA, child elements."""
        cut = _next_special(buffer, position)
        if cut > position:
            self._value_text(buffer[position:cut], ops)
            return cut, False
        if buffer.startswith("&", position) or buffer.startswith(f"</{current}", position):
            return self._scan_section(buffer, position, current, ops, final=final)
        for opener, closer in SKIPPED:
            if buffer.startswith(opener, position):
                end = buffer.find(closer, position + len(opener))
                if end == -1 and final:  # never closed: DSPy rejects the reply, its text stays as sent
                    self._value_text(buffer[position:], ops)
                    return len(buffer), False
                if end == -1:
                    return position, True
                if opener == CDATA:
                    self._value_text(buffer[position + len(opener) : end], ops)
                return end + len(closer), False
            if opener.startswith(buffer[position : position + len(opener)]) and not final:
                return position, True
        end = buffer.find(">", position)
        tag = TAG_RE.fullmatch(buffer[position : end + 1]) if end != -1 else None
        if tag is None or tag.group(1):  # not a start tag: as _scan_section writes it
            return self._scan_section(buffer, position, current, ops, final=final)
        self._child, self._child_depth = buffer[position : end + 1], 0 if tag.group(3) else 1
        if not self._child_depth:
            self._end_child(ops)
        return end + 1, False

    def _scan_child(self, buffer: str, position: int, ops: list[Op], *, final: bool) -> tuple[int, bool]:
        """Collect a child element's markup up to its own end tag (nested elements counted; DSPy nests them)."""
        start = buffer.find("<", position)
        if start == -1:
            self._child += buffer[position:]
            return len(buffer), True
        if start > position:
            self._child += buffer[position:start]
            return start, False
        closer = next((closer for opener, closer in SKIPPED if buffer.startswith(opener, start)), ">")
        end = buffer.find(closer, start + 1)
        if end == -1 and final:  # cut short: finish() writes the child as it was sent
            self._child += buffer[start:]
            return len(buffer), False
        if end == -1:
            return start, True
        end += len(closer)
        markup = buffer[start:end]
        self._child += markup
        tag = TAG_RE.fullmatch(markup) if closer == ">" else None
        if tag is not None and not tag.group(3):
            self._child_depth += -1 if tag.group(1) else 1
            if self._child_depth == 0:
                self._end_child(ops)
        return end, False

    def _end_child(self, ops: list[Op]) -> None:
        """Write the finished child element as ElementTree does (as sent when it is not XML: DSPy rejects it)."""
        try:
            text = ET.tostring(ET.fromstring(self._child), encoding="unicode")
        except ET.ParseError:
            text = self._child
        self._child = ""
        self._sections.keep(text, ops)
        self._after_child = True

    def _value_text(self, text: str, ops: list[Op]) -> None:
        """Text of the value; after a child element ElementTree writes it escaped (``&amp;``, ``&lt;``, ``&gt;``)."""
        if self._after_child:
            text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        self._sections.text(text, ops)

    def _scan_between(self, buffer: str, position: int, ops: list[Op]) -> tuple[int, bool]:
        """One step outside any section: find the next tag and open, close or skip a section by it.

        Returns the new position and whether to wait for more input.
        """
        start = buffer.find("<", position)
        if start == -1:
            return len(buffer), True
        end = buffer.find(">", start)
        if end == -1:
            return start, True
        tag = (LEGACY_TAG_RE if self._legacy else TAG_RE).fullmatch(buffer[start : end + 1])
        if tag is None:
            return end + 1, False
        closing_tag, name, self_closing = tag.group(1), tag.group(2), tag.group(3)
        if self._skip is not None:
            if name == self._skip:
                # dspy < 3.3 ends an element at the first closing tag of its name: no nesting
                opened = 0 if self_closing or self._legacy else 1
                self._skip_depth += -1 if closing_tag else opened
                if self._skip_depth == 0:
                    self._skip = None
            return end + 1, False
        if closing_tag:
            return end + 1, False
        self._sections.open(name, ops)
        self._after_child = False
        if self._sections.current is None:
            if not self_closing:
                self._skip, self._skip_depth = name, 1
        elif self_closing:
            self._sections.close(ops)
        return end + 1, False


_legacy_xml: bool | None = None


def xml_rules_are_legacy() -> bool:
    """True when the installed XMLAdapter keeps values raw (dspy < 3.3: no entity decoding)."""
    global _legacy_xml
    if _legacy_xml is None:
        try:
            from dspy.adapters.xml_adapter import XMLAdapter
            from dspy.signatures.signature import Signature

            parsed = XMLAdapter().parse(Signature("question -> answer"), "<answer>&amp;</answer>")
            _legacy_xml = parsed.get("answer") == "&amp;"
        except Exception:
            _legacy_xml = False
    return _legacy_xml


def _next_special(buffer: str, start: int) -> int:
    """Index of the next ``<`` or ``&`` at or after ``start`` (or the end)."""
    candidates = [index for index in (buffer.find("<", start), buffer.find("&", start)) if index != -1]
    return min(candidates) if candidates else len(buffer)


def _decode_entity(entity: str) -> str:
    body = entity[1:-1]
    if body.startswith("#x") or body.startswith("#X"):
        try:
            return chr(int(body[2:], 16))
        except ValueError:
            return entity
    if body.startswith("#"):
        try:
            return chr(int(body[1:]))
        except ValueError:
            return entity
    return XML_ENTITIES.get(body, entity)


__all__ = ["XMLParser", "xml_rules_are_legacy"]
