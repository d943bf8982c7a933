"""The default sink: one readable line per event on the terminal."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TextIO
from urllib.parse import urlsplit

from streamll.core.events import Event, TokenEvent
from streamll.core.serialization import event_to_dict
from streamll.errors import ConfigurationError
from streamll.sinks.base import BaseSink


def printable(text: str) -> str:
    """``text`` with lone surrogates (valid in a JSON string, not encodable) written as ``\\udXXX`` escapes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def format_event(event: Event) -> str:
    """``[TOKEN] answer: "Machine"`` for tokens, ``[START] module QA`` style lines for the rest.

    The line can always be printed: a lone surrogate in a token is shown as ``\\ud800``.
    """
    return printable(_format(event))


def _format(event: Event) -> str:
    if isinstance(event, TokenEvent):
        return f"[TOKEN] {event.field}: {json.dumps(event.token, ensure_ascii=False)}"
    label = event.event_type.upper()
    if event.event_type in _AGENT_LINES:
        return f"[{label}] {_AGENT_LINES[event.event_type](event_to_dict(event)['data'])}"
    subject = " ".join(part for part in (event.operation, event.module_name) if part)
    details = []
    data = event.data
    duration = data.get("duration_ms")
    if isinstance(duration, (int, float)) and not isinstance(duration, bool):
        details.append(f"{duration:.0f} ms")
    if data.get("finish_reason"):
        details.append(f"finish_reason={data['finish_reason']}")
    if event.event_type == "error":
        details.append(f"{data.get('error_type')}: {data.get('error_message')}")
    elif event.event_type not in ("start", "end") and data:
        # the wire encoding's data: whatever the user put there (cycles, a raising __repr__) is text already
        details.append(json.dumps(event_to_dict(event)["data"], ensure_ascii=False))
    suffix = f"({', '.join(details)})" if details else ""
    return " ".join(part for part in (f"[{label}]", subject, suffix) if part)


def _step(data: dict[str, Any]) -> str:
    return f" (step {data['step']})" if isinstance(data.get("step"), int) else ""


def _duration(data: dict[str, Any]) -> str:
    duration = data.get("duration_ms")
    return f"{duration:.0f} ms" if isinstance(duration, (int, float)) and not isinstance(duration, bool) else ""


_AGENT_LINES: dict[str, Callable[[dict[str, Any]], str]] = {
    "tool_start": lambda d: f"{d.get('tool_name')}({json.dumps(d.get('arguments'), ensure_ascii=False)}){_step(d)}",
    "tool_end": lambda d: f"{d.get('tool_name')} -> {json.dumps(d.get('result'), ensure_ascii=False)} ({_duration(d)})",
    "tool_error": lambda d: f"{d.get('tool_name')} ({_duration(d)}, {d.get('error_type')}: {d.get('error_message')})",
    "status": lambda d: str(d.get("message")),
}
"""One readable line per agent event: ``[TOOL_START] add({"a": 2}) (step 0)``, ``[STATUS] Calling tool add...``."""


class TerminalSink(BaseSink):
    """Prints every event as one line; used when no sink is configured.

    ``TerminalSink(tokens_only=True)`` prints only ``[TOKEN]`` lines;
    ``show_tokens=False`` prints every line but those. URL form:
    ``terminal://`` (stdout) or ``terminal://stderr``. ``output=`` is 0.1's
    name for ``stream`` (deprecated).
    """

    linger = 0.005

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        tokens_only: bool = False,
        show_tokens: bool = True,
        output: TextIO | None = None,
        **options: object,
    ) -> None:
        """Print to ``stream`` (stdout at write time when None); also accepts 0.1's positional and ``output=`` forms."""
        if isinstance(stream, bool):  # 0.1's TerminalSink(show_tokens, output) positional form
            stream, show_tokens = None, stream
        if output is not None:
            from streamll.deprecation import deprecated

            deprecated("TerminalSink(output=...)", "TerminalSink(stream=...)")
            if stream is not None:
                raise ConfigurationError("TerminalSink: give stream= only (output= is its deprecated name)")
            stream = output
        super().__init__(**options)  # type: ignore[arg-type]
        self._stream = stream
        self.tokens_only = tokens_only
        self.show_tokens = show_tokens

    @classmethod
    def from_url(cls, url: str) -> TerminalSink:
        """``terminal://`` or ``terminal://stderr``; ``?tokens_only=1`` hides lifecycle lines."""
        parts = urlsplit(url)
        target = parts.netloc or parts.path.strip("/") or "stdout"
        if target not in ("stdout", "stderr"):
            raise ConfigurationError(f"terminal sink writes to stdout or stderr, not {target!r}")
        tokens_only = "tokens_only=1" in parts.query or "tokens_only=true" in parts.query
        return cls(sys.stderr if target == "stderr" else None, tokens_only=tokens_only)

    @property
    def output(self) -> TextIO:
        """0.1's name for :attr:`stream`."""
        return self.stream

    @property
    def stream(self) -> TextIO:
        """Where lines go (``sys.stdout`` at the time of writing unless given)."""
        return self._stream or sys.stdout

    def handle_event(self, event: Event) -> None:
        """Print one line for ``event``."""
        is_token = isinstance(event, TokenEvent)
        if (self.tokens_only and not is_token) or (is_token and not self.show_tokens):
            return
        stream = self.stream
        stream.write(format_event(event) + "\n")
        stream.flush()


__all__ = ["TerminalSink", "format_event", "printable"]
