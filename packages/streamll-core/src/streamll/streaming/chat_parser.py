"""Incremental parser for ChatAdapter replies (``[[ ## field ## ]]`` headers, values stripped)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from streamll.streaming.sections import Op, Sections

__all__ = ["ChatParser"]

HEADER_RE = re.compile(r"\[\[ ## (\w+) ## \]\]")
HEADER_PREFIX = "[[ ## "
HEADER_SUFFIX = " ## ]]"
WORD_RE = re.compile(r"\w+")
LINE_BREAK_RE = re.compile("(\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029])")
"""The boundaries ``str.splitlines()`` uses (ChatAdapter parses line by line)."""


class ChatParser:
    """ChatAdapter replies: ``[[ ## field ## ]]`` header lines start sections."""

    def __init__(self, fields: Iterable[str]) -> None:
        """Parse replies for the output ``fields``."""
        self._sections = Sections(fields, strip=True)
        self._line = ""
        self._mode = "start"  # start: deciding whether the line is a header; content; header
        self._header: re.Match[str] | None = None
        self._carry_cr = False

    def feed(self, text: str) -> list[Op]:
        """Operations for the next chunk of reply text."""
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
        """Operations at the end of the reply (closes an open field)."""
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
