"""The sinks that ship with core, registered through the same hook as any plugin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamll.hookspecs import SinkFactory, hookimpl
from streamll.sinks.memory import MemorySink
from streamll.sinks.terminal import TerminalSink


@hookimpl
def streamll_register_sinks(register: Callable[[str, SinkFactory], Any]) -> None:
    """``terminal://`` and ``memory://NAME``."""
    register("terminal", TerminalSink.from_url)
    register("memory", MemorySink.from_url)
