"""The DSPy methods streamll wraps, put in place only while an instrumented call runs.

The wrappers (:mod:`~streamll.streaming.hooks`, :mod:`~streamll.streaming.capture`)
are built once. They are set on DSPy's classes when the first instrumented call
starts and the originals are restored when the last one ends (a count under a
lock), so a program that runs while no instrumented call is running executes
DSPy's own methods: no extra frame in its tracebacks, no cost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()
_patches: list[tuple[Any, str, Any, Any]] = []
_active = 0
_prepared = False


def register(owner: Any, name: str, wrapper: Any) -> None:
    """Wrap ``owner.name`` (a class or module attribute) while instrumented calls run."""
    original = owner.__dict__[name]
    _patches.append((owner, name, original, wrapper))


def activate(prepare: Callable[[], None]) -> None:
    """One more instrumented call is running (``prepare`` builds the wrappers on first use)."""
    global _active, _prepared
    with _lock:
        if not _prepared:
            prepare()
            _prepared = True
        _active += 1
        if _active == 1:
            for owner, name, _original, wrapper in _patches:
                setattr(owner, name, wrapper)


def deactivate() -> None:
    """An instrumented call ended; the last one restores DSPy's own methods."""
    global _active
    with _lock:
        _active -= 1
        if _active == 0:
            for owner, name, original, _wrapper in _patches:
                setattr(owner, name, original)


def active() -> int:
    """How many instrumented calls are running."""
    return _active


def forget() -> bool:
    """Drop the built wrappers so the next instrumented call builds them again, as a new process's first does.

    For tests of that first call. Does nothing (returns False) while an instrumented call runs.
    """
    global _prepared
    with _lock:
        if _active:
            return False
        _patches.clear()
        _prepared = False
        return True


__all__ = ["activate", "active", "deactivate", "forget", "register"]
