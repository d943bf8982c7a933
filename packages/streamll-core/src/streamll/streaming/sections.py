"""What the per-adapter reply parsers share: the operation type, the parser protocol, field bookkeeping.

A parser's ``feed()`` returns operations ``("open", field)``, ``("text", field, piece)``
and ``("close", field)``; :class:`Sections` turns "this field's text starts / continues /
ends" into those, first occurrence of a field winning, stripping whitespace where the
adapter strips it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

__all__ = ["FieldParser", "Op", "Sections", "Stripper"]

Op = tuple[str, ...]


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

    Applying it to the pieces of a value yields exactly ``value.strip()``, unless
    :meth:`keep` is called: from then on the value is kept whole (the leading
    whitespace held so far comes first, the trailing comes from :meth:`end`).
    """

    __slots__ = ("held", "kept", "lead", "started")

    def __init__(self) -> None:
        """Nothing seen yet."""
        self.started = False
        self.kept = False
        self.held = ""
        self.lead = ""

    def push(self, text: str) -> str:
        """The part of ``text`` that certainly belongs to the value."""
        if self.kept:
            return text
        if not self.started:
            body = text.lstrip()
            self.lead += text[: len(text) - len(body)]
            text = body
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

    def keep(self, text: str) -> str:
        """``text`` and what was held before it: from here nothing of the value is stripped."""
        out = ("" if self.started else self.lead) + self.held + text
        self.started = self.kept = True
        self.lead = self.held = ""
        return out

    def end(self) -> str:
        """What the value still holds at its end: the trailing whitespace of a kept value, else nothing."""
        return self.held if self.kept else ""


class Sections:
    """Field bookkeeping shared by the parsers: which field is open, first occurrence wins."""

    def __init__(self, fields: Iterable[str], *, strip: bool) -> None:
        """Track ``fields``; ``strip`` drops each value's surrounding whitespace."""
        self.fields = set(fields)
        self.seen: set[str] = set()
        self.current: str | None = None
        self.strip = strip
        self._stripper = Stripper()

    def open(self, name: str, ops: list[Op]) -> None:
        """Close the open field; open ``name`` when it is wanted and not seen before."""
        self.close(ops)
        if name in self.fields and name not in self.seen:
            self.seen.add(name)
            self.current = name
            self._stripper = Stripper()
            ops.append(("open", name))

    def text(self, piece: str, ops: list[Op]) -> None:
        """More text of the open field (stripped when this adapter strips values)."""
        if self.current is None or not piece:
            return
        if self.strip:
            piece = self._stripper.push(piece)
        if piece:
            ops.append(("text", self.current, piece))

    def keep(self, piece: str, ops: list[Op]) -> None:
        """More text of the open field, after which its value is no longer stripped (see :meth:`Stripper.keep`)."""
        if self.current is None:
            return
        if self.strip:
            piece = self._stripper.keep(piece)
        if piece:
            ops.append(("text", self.current, piece))

    def close(self, ops: list[Op]) -> None:
        """End the open field, if any."""
        if self.current is not None:
            if self.strip and (rest := self._stripper.end()):
                ops.append(("text", self.current, rest))
            ops.append(("close", self.current))
            self.current = None
