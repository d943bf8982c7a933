"""Incremental parser for JSONAdapter replies (a JSON object; string values decoded as they stream)."""

from __future__ import annotations

from collections.abc import Iterable

from streamll.streaming.sections import Op, Sections

__all__ = ["JSONParser", "json_rules_are_legacy"]

JSON_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
REPAIR_ESCAPES = {"'": "'", "\u201c": "\u201c", "\u201d": "\u201d", "\u201e": "\u201e"}
"""Escapes JSON lacks that json_repair reads as the character (other such escapes it keeps as written)."""
HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class JSONParser:
    """JSONAdapter replies: one JSON object; string values are decoded as they stream.

    DSPy decodes a reply that is JSON by JSON's rules, and any other through
    json_repair, whose rules differ for a few escapes (it keeps ``\\/`` and
    ``\\f`` as written, reads ``\\'`` as ``'``, keeps ``\\q``). Streaming cannot
    know the reply's end, so JSON's rules apply until an escape JSON lacks
    shows the reply is not JSON; json_repair's apply from there on (an earlier
    ``\\/`` or ``\\f`` in such a reply streams as JSON reads it).

    ``legacy`` follows the JSONAdapter of dspy < 3.1 (or so) that first cuts the reply at the
    first balanced ``{...}``, counting braces inside strings too: a ``}`` in a
    string that balances them ends the reply there. By default the installed
    DSPy's rule is used.
    """

    def __init__(self, fields: Iterable[str], *, legacy: bool | None = None) -> None:
        """Parse replies for the output ``fields``."""
        self._legacy = json_rules_are_legacy() if legacy is None else legacy
        self._braces = 0  # legacy: braces open since the first "{", those inside strings counted
        self._sections = Sections(fields, strip=False)
        self._state = "before"
        self._key = ""
        self._escape = ""
        self._raw = ""
        self._depth = 0
        self._raw_in_string = False
        self._raw_escape = False
        self._high_surrogate: str | None = None
        self._not_json = False  # an escape JSON lacks was seen: json_repair reads this reply
        self._trailing = ""  # whitespace at the end of the string so far, held while it may be dropped
        self._plain = not self._legacy  # a string's characters other than \\ and " are text as they are

    def feed(self, text: str) -> list[Op]:
        """Operations for the next chunk of reply text."""
        ops: list[Op] = []
        pending: list[str] = []
        for char in text:
            state = self._state
            if self._legacy and char in "{}" and self._cut_at_balance(char, pending, ops):
                continue
            if state == "string_value":
                if self._plain and not self._escape and self._high_surrogate is None and char not in '\\"':
                    pending.append(char)  # the common case, kept inline
                    continue
                piece, ended = self._string_char(char)
                if piece:
                    pending.append(piece)
                if ended:
                    self._flush(pending, ops)
                    self._sections.close(ops)
                    self._state = "after_value"
                continue
            self._step(char, ops)  # nothing is pending: a string's end and a cut flush it
        self._flush(pending, ops)
        return ops

    def finish(self) -> list[Op]:
        """Operations at the end of the reply (closes an open field)."""
        ops: list[Op] = []
        if self._state == "raw_value":
            self._end_raw(ops)
        elif self._state == "value_start":  # cut before the value: json_repair reads an empty one
            self._sections.open(self._key, ops)
        elif self._state == "string_value":  # cut short (inside an escape: kept as written, as DSPy does)
            # json_repair drops the trailing whitespace of a string missing its closing quote (only held whitespace:
            # a plain string streamed its own, and no escape or surrogate ends in any)
            self._sections.text((self._trailing + self._held() + self._escape).rstrip(), ops)
        self._sections.close(ops)
        return ops

    def _cut_at_balance(self, char: str, pending: list[str], ops: list[Op]) -> bool:
        """Legacy rule: count ``char``; True when it balances the braces inside a string, which ends the reply."""
        if self._state == "before":
            if char == "{":
                self._braces = 1
            return False
        # after the reply's end ("done") braces are still counted, to no effect: only a string or a key is cut
        self._braces += 1 if char == "{" else -1
        if self._braces or self._state not in ("string_value", "key"):
            return False
        # json_repair reads what is left: a string missing its closing quote, trailing whitespace dropped
        if self._state == "string_value":
            pending.append((self._trailing + self._held() + self._escape).rstrip())
            self._flush(pending, ops)
            self._sections.close(ops)
        self._state = "done"
        return True

    def _flush(self, pending: list[str], ops: list[Op]) -> None:
        if pending:
            self._sections.text("".join(pending), ops)
            pending.clear()

    def _string_char(self, char: str) -> tuple[str, bool]:
        """The text ``char`` adds to the open string (a key or a value), and whether it ends the string."""
        text, ended = self._string_text(char)
        if self._plain:
            return text, ended
        # json_repair drops a string's trailing whitespace when it ends in a line break, and a string cut by the
        # legacy rule loses it: hold it until text follows
        text = self._trailing + text
        if ended:
            self._trailing = ""
            return ("" if self._not_json and text.endswith("\n") else text), True  # then it is all held whitespace
        body = text.rstrip()
        self._trailing = text[len(body) :]
        return body, False

    def _string_text(self, char: str) -> tuple[str, bool]:
        text = ""
        if self._escape:
            escape = self._escape
            if len(escape) < 2 or escape[1] not in "ux" or char in HEX_DIGITS:
                self._escape += char
                return self._decode_escape(), False
            # a \u / \x escape cut short by a non-hex character: json_repair keeps it as written and reads
            # the character on its own (a closing quote still ends the string)
            self._escape = ""
            self._read_as_repaired()
            text = self._held() + escape
        if char == "\\":
            self._escape = "\\"  # a high surrogate stays held: a low half may follow
            return text, False
        text += self._held()
        if char == '"':
            return text, True
        return text + char, False

    def _decode_escape(self) -> str:
        """The text of the escape read so far ("" until it is complete)."""
        escape = self._escape
        kind = escape[1]
        if kind not in "ux":
            self._escape = ""
            return self._held() + self._one_letter_escape(kind, escape)
        if len(escape) < (6 if kind == "u" else 4):
            return ""
        self._escape = ""
        if kind == "x":
            self._read_as_repaired()
        char = chr(int(escape[2:], 16))  # only hex digits get this far (see _string_char)
        if 0xDC00 <= ord(char) <= 0xDFFF and self._high_surrogate is not None:
            high, self._high_surrogate = self._high_surrogate, None
            return (high + char).encode("utf-16", "surrogatepass").decode("utf-16")
        held = self._held()
        if 0xD800 <= ord(char) <= 0xDBFF:
            self._high_surrogate = char  # waits for its low half
            return held
        return held + char

    def _one_letter_escape(self, kind: str, escape: str) -> str:
        """``\\n``, ``\\/``, ``\\q``...: JSON's meaning until the reply shows it is not JSON, then json_repair's."""
        if kind not in JSON_ESCAPES:
            self._read_as_repaired()
            return REPAIR_ESCAPES.get(kind, escape)
        if self._not_json and kind in "/f":
            return escape
        return JSON_ESCAPES[kind]

    def _read_as_repaired(self) -> None:
        """The reply holds what JSON lacks: DSPy reads it with json_repair, so the rest of it is read by its rules."""
        self._not_json, self._plain = True, False

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
            piece, ended = self._string_char(char)
            self._key += piece
            if ended:
                self._state = "colon"
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


_legacy_json: bool | None = None


def json_rules_are_legacy() -> bool:
    """True when the installed JSONAdapter cuts the reply at the first balanced ``{...}`` before reading it,
    counting braces inside strings (older DSPy: a ``"}"`` in a value ends the reply)."""
    global _legacy_json
    if _legacy_json is None:
        try:
            from dspy.adapters.json_adapter import JSONAdapter
            from dspy.signatures.signature import Signature

            parsed = JSONAdapter().parse(Signature("question -> answer"), '{"answer": "}"}')
            _legacy_json = parsed.get("answer") != "}"
        except Exception:
            _legacy_json = False
    return _legacy_json
