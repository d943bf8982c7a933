"""Incremental parser for JSONAdapter replies (a JSON object; string values decoded as they stream)."""

from __future__ import annotations

from collections.abc import Iterable

from streamll.streaming.sections import Op, Sections

__all__ = ["JSONParser"]

JSON_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class JSONParser:
    """JSONAdapter replies: one JSON object; string values are decoded as they stream."""

    def __init__(self, fields: Iterable[str]) -> None:
        """Parse replies for the output ``fields``."""
        self._sections = Sections(fields, strip=False)
        self._state = "before"
        self._key = ""
        self._escape = ""
        self._raw = ""
        self._depth = 0
        self._raw_in_string = False
        self._raw_escape = False
        self._high_surrogate: str | None = None

    def feed(self, text: str) -> list[Op]:
        """Operations for the next chunk of reply text."""
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
                    if self._high_surrogate is not None:
                        pending.append(self._held())
                    self._flush(pending, ops)
                    self._sections.close(ops)
                    self._state = "after_value"
                elif self._high_surrogate is None:
                    pending.append(char)
                else:
                    pending.append(self._held() + char)
                continue
            self._flush(pending, ops)
            self._step(char, ops)
        self._flush(pending, ops)
        return ops

    def finish(self) -> list[Op]:
        """Operations at the end of the reply (closes an open field)."""
        ops: list[Op] = []
        if self._state == "raw_value":
            self._end_raw(ops)
        elif self._high_surrogate is not None:
            self._sections.text(self._held(), ops)
        self._sections.close(ops)
        return ops

    def _flush(self, pending: list[str], ops: list[Op]) -> None:
        if pending:
            self._sections.text("".join(pending), ops)
            pending.clear()

    def _decode_escape(self) -> str | None:
        escape = self._escape
        kind = escape[1]
        if kind not in "ux":
            self._escape = ""
            # not JSON: kept as written, like DSPy's json_repair fallback
            return self._held() + JSON_ESCAPES.get(kind, escape)
        if len(escape) < (6 if kind == "u" else 4):
            return None
        self._escape = ""
        try:
            char = chr(int(escape[2:], 16))
        except ValueError:
            return self._held() + escape
        if 0xDC00 <= ord(char) <= 0xDFFF and self._high_surrogate is not None:
            high, self._high_surrogate = self._high_surrogate, None
            return (high + char).encode("utf-16", "surrogatepass").decode("utf-16")
        held = self._held()
        if 0xD800 <= ord(char) <= 0xDBFF:
            self._high_surrogate = char  # waits for its low half
            return held
        return held + char

    def _held(self) -> str:
        """The high surrogate waiting for its low half, now that none came (JSON keeps it alone); or ""."""
        high, self._high_surrogate = self._high_surrogate, None
        return high or ""

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
                self._key += self._held()  # a lone high surrogate ends with the key (no field has one in its name)
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
