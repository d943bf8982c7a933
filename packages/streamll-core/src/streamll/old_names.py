"""0.1 names that plugins provide now (``streamll.RedisSink``): each warns, then loads from the plugin.

Which names these are, and what each loads, is the plugin's to declare, on its card
(:attr:`~streamll.hookspecs.PluginCard.old_names`); a first-party plugin that is not
installed is described by the catalogue, so the error says which extra to install.
"""

from __future__ import annotations

from typing import Any

from streamll.catalog import FIRST_PARTY
from streamll.deprecation import REMOVED, deprecated
from streamll.hookspecs import OldName, PluginCard
from streamll.plugins import cards


def plugin_name(owner: str, name: str) -> Any:
    """A 0.1 name of module ``owner`` that a plugin provides now: warns, then loads it from the plugin.

    ``AttributeError`` for any other name, as a module's ``__getattr__`` must raise.
    """
    if name in REMOVED:
        raise ImportError(REMOVED[name], name=name)
    found = _provider(name)
    if found is None:
        raise AttributeError(f"module {owner!r} has no attribute {name!r}")
    card, old = found
    deprecated(f"{owner}.{name}", f"`{old.instead}`", stacklevel=4)
    return card.load(name, old.target)


def _provider(name: str) -> tuple[PluginCard, OldName] | None:
    """The card declaring 0.1 name ``name``: the installed plugin's, else the first-party catalogue's.

    Only names the first-party plugins provide can be 0.1 names (0.1 had no other
    plugins), so any other name is refused without loading plugins: a module
    attribute miss, which may happen while plugins load, never loads them.
    """
    if not any(old.name == name for card in FIRST_PARTY.values() for old in card.old_names):
        return None
    return next(((card, old) for card in cards().values() for old in card.old_names if old.name == name), None)


__all__ = ["plugin_name"]
