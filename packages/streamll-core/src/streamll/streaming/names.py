"""Predictor paths and predictor-qualified stream fields.

A predictor is named by its attribute path inside the instrumented module, as
``named_predictors()`` names it (``respond``, ``cot.predict``,
``refine.module.predict``); events carry it as ``data["predictor_path"]`` and
``module_name`` / ``data["predictor"]`` as ``<Class>.<path>``. Deep copies that
DSPy makes while a program runs (``dspy.Refine`` / ``dspy.BestOfN`` copy their
module for every attempt) are traced back to the predictor they copy, so they
keep the user's path.

``stream_fields`` entries are field names (``"answer"``: that field of every
predictor) or predictor-qualified ones (``"respond.answer"``: the field of the
predictors at or below the path ``respond``).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_ENTRY_RE = re.compile(r"^[^.\s]+(\.[^.\s]+)*$")

_origins: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
"""A copied predictor -> the predictor it copies (the original of a chain of copies)."""
_attempts: weakref.WeakKeyDictionary[Any, tuple[Any, int]] = weakref.WeakKeyDictionary()
"""A copied predictor -> (the attempts it belongs to, its attempt number)."""
_paths: weakref.WeakKeyDictionary[Any, dict[int, str]] = weakref.WeakKeyDictionary()
"""Per instrumented module instance: id(original predictor) -> its path (``named_predictors`` walks the module)."""


def check_entry(name: str) -> None:
    """Raise a one-line ``ValueError`` for a malformed ``stream_fields`` entry (``"a..b"``, ``".answer"``)."""
    if not _ENTRY_RE.match(name):
        raise ValueError(
            f"stream_fields entry {name!r} is not a field name ('answer') "
            "nor a predictor-qualified one ('respond.answer')"
        )


@dataclass(frozen=True)
class Choice:
    """What one predictor call streams: its chosen output fields and the ``stream_fields`` entries that matched."""

    fields: frozenset[str]
    matched: frozenset[str]
    reasoning: str | None
    """The entry choosing ``reasoning`` for this predictor (native reasoning may stream), if any."""


def choose(chosen: Iterable[str], outputs: Iterable[str], path: str | None, owner: str) -> Choice:
    """The fields of one predictor (at ``path`` in a module of class ``owner``) that ``chosen`` selects."""
    outputs = set(outputs)
    fields: set[str] = set()
    matched: set[str] = set()
    reasoning: str | None = None
    for entry in chosen:
        qualifier, _, field = entry.rpartition(".")
        if qualifier and not _under(qualifier, path, owner):
            continue
        if field == "reasoning" and reasoning is None:
            reasoning = entry
        if field in outputs:
            fields.add(field)
            matched.add(entry)
    return Choice(frozenset(fields), frozenset(matched), reasoning)


def _under(qualifier: str, path: str | None, owner: str) -> bool:
    if path is None:
        return False
    for candidate in (path, f"{owner}.{path}"):
        if candidate == qualifier or candidate.startswith(qualifier + "."):
            return True
    return False


def record_copy(original: Any, copy: Any, attempts: Any = None, attempt: int | None = None) -> None:
    """``copy`` is a deep copy of ``original``: its predictors keep the original ones' names (and an attempt)."""
    pairs = zip(original.named_predictors(), copy.named_predictors(), strict=False)
    for (name, source), (copy_name, copied) in pairs:
        if name != copy_name or copied is source:
            continue
        _origins[copied] = _origins.get(source, source)
        if attempts is not None and attempt is not None:
            _attempts[copied] = (attempts, attempt)


def origin(predict: Any) -> Any:
    """The predictor ``predict`` was copied from (itself when it is no copy)."""
    try:
        return _origins.get(predict, predict)
    except TypeError:  # not weak-referenceable / hashable
        return predict


def attempt_of(predict: Any) -> tuple[Any, int] | None:
    """(attempts, number) when ``predict`` belongs to one attempt of a ``Refine`` / ``BestOfN``."""
    try:
        return _attempts.get(predict)
    except TypeError:
        return None


def predictor_path(module: Any, predict: Any) -> str | None:
    """``predict``'s attribute path inside ``module`` (as ``named_predictors()`` names it), if it has one."""
    if module is None:
        return None
    source = origin(predict)
    try:
        known = _paths.setdefault(module, {})
    except TypeError:  # not weak-referenceable
        known = {}
    path = known.get(id(source))
    if path is None:
        path = _find_path(module, source)
        if path is not None:  # a predictor made on the fly has no path: looked up again, never cached by its id
            known[id(source)] = path
    return path


def _find_path(module: Any, predict: Any) -> str | None:
    try:
        for name, candidate in module.named_predictors():
            if candidate is predict:
                return str(name)
    except Exception:  # named_predictors walks user attributes; never fail on it
        pass
    return None


def predictor_name(module: Any, predict: Any, path: str | None) -> str:
    """``QA.predict`` style name: the instrumented class and the predictor's path."""
    owner = type(module).__name__ if module is not None else "module"
    return f"{owner}.{path}" if path is not None else f"{owner}.{type(predict).__name__}"


def module_path(root: Any, module: Any) -> str | None:
    """The attribute path of the sub-module ``module`` inside ``root`` (``named_sub_modules``)."""
    try:
        for name, candidate in root.named_sub_modules():
            if candidate is module:
                return str(name).removeprefix("self.") if name != "self" else None
    except Exception:
        pass
    return None


__all__ = [
    "Choice",
    "attempt_of",
    "check_entry",
    "choose",
    "module_path",
    "origin",
    "predictor_name",
    "predictor_path",
    "record_copy",
]
