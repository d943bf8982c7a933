"""Event ids: unique across processes and forks, and cheap enough to give every token one."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

_id_prefix = ""
_id_counter: Iterator[int] = itertools.count()


def _new_id_prefix() -> None:
    """64 random bits from the OS for this process (again in a forked child), so ids never repeat across processes."""
    global _id_prefix, _id_counter
    _id_prefix = os.urandom(8).hex()
    _id_counter = itertools.count(int.from_bytes(os.urandom(4), "big"))


_new_id_prefix()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_id_prefix)


def new_event_id() -> str:
    """A unique 128-bit id as 32 hex characters: 64 random bits per process, then a 64-bit counter.

    Cheap enough for every token (a counter, not a system call), unique
    across processes and forks; ids need to be unique, not secret.
    """
    return f"{_id_prefix}{next(_id_counter) & 0xFFFFFFFFFFFFFFFF:016x}"


__all__ = ["new_event_id"]
