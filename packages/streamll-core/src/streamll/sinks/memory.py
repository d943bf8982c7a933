"""An in-memory sink for tests and notebooks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import ClassVar
from urllib.parse import urlsplit

from streamll.core.events import Event, TokenEvent
from streamll.sinks.base import BaseSink


class MemorySink(BaseSink):
    """Keeps every event it receives in :attr:`events`, in delivery order.

    Events arrive on the background worker: call ``streamll.flush()`` (or
    :meth:`wait_for`) before reading. ``memory://NAME`` URLs share one sink per name.
    """

    linger = 0.005
    _named: ClassVar[dict[str, MemorySink]] = {}
    _named_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, **options: object) -> None:
        """An empty sink; ``options`` are :class:`BaseSink`'s."""
        super().__init__(**options)  # type: ignore[arg-type]
        self.events: list[Event] = []
        self._changed = threading.Condition()

    @classmethod
    def from_url(cls, url: str) -> MemorySink:
        """The sink named by ``memory://NAME`` (created on first use)."""
        name = urlsplit(url).netloc or "default"
        with cls._named_lock:
            if name not in cls._named:
                cls._named[name] = cls(name=name)
            return cls._named[name]

    @classmethod
    def named(cls, name: str = "default") -> MemorySink:
        """The shared sink for ``memory://NAME``."""
        return cls.from_url(f"memory://{name}")

    async def write_batch(self, events: list[Event]) -> int | None:
        """Append the batch (no I/O, so no helper thread)."""
        with self._changed:
            self.events.extend(events)
            self._changed.notify_all()
        return None

    def handle_event(self, event: Event) -> None:
        """Append one event directly (for code that calls sinks by hand)."""
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def _reset_after_fork(self) -> None:
        super()._reset_after_fork()
        self._changed = threading.Condition()

    def wait_for(self, predicate: Callable[[list[Event]], bool], timeout: float = 10.0) -> bool:
        """Block until ``predicate(self.events)`` is true; False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.events):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def tokens(
        self,
        field: str | None = None,
        execution_id: str | None = None,
        *,
        predictor: str | None = None,
        attempt: int | None = None,
    ) -> list[TokenEvent]:
        """Token events, optionally of one field, execution, predictor and/or ``Refine`` / ``BestOfN`` attempt.

        ``field`` may be predictor-qualified (``"respond.answer"``), as in
        ``stream_fields``; ``predictor`` is a predictor path (``"respond"``) and
        also matches the predictors below it (``"cot"`` matches ``"cot.predict"``).
        """
        if field is not None and "." in field:
            qualifier, _, field = field.rpartition(".")
            predictor = qualifier if predictor is None else predictor
        return [
            event
            for event in list(self.events)
            if isinstance(event, TokenEvent)
            and (field is None or event.field == field)
            and (execution_id is None or event.execution_id == execution_id)
            and (predictor is None or _under(event.data.get("predictor_path"), predictor))
            and (attempt is None or event.data.get("attempt") == attempt)
        ]

    def text(
        self,
        field: str | None = None,
        execution_id: str | None = None,
        *,
        predictor: str | None = None,
        attempt: int | None = None,
    ) -> str:
        """The streamed text: tokens joined in order (``text("respond.answer")``: one predictor's)."""
        return "".join(event.token for event in self.tokens(field, execution_id, predictor=predictor, attempt=attempt))

    def texts(self, field: str | None = None, execution_id: str | None = None) -> dict[str, str]:
        """The streamed text per predictor and field, keyed ``"respond.answer"`` (not merged across stages)."""
        out: dict[str, str] = {}
        for event in self.tokens(field, execution_id):
            path = event.data.get("predictor_path") or event.data.get("predictor") or ""
            key = f"{path}.{event.field}" if path else event.field
            out[key] = out.get(key, "") + event.token
        return out

    def values(self, execution_id: str | None = None) -> dict[str, object]:
        """Parsed values of typed fields (``data["value"]`` of their last tokens), keyed ``"respond.count"``."""
        out: dict[str, object] = {}
        for event in self.tokens(execution_id=execution_id):
            if "value" in event.data:
                path = event.data.get("predictor_path") or ""
                out[f"{path}.{event.field}" if path else event.field] = event.data["value"]
        return out

    def of_type(self, event_type: str) -> list[Event]:
        """Events of one ``event_type``."""
        return [event for event in list(self.events) if event.event_type == event_type]

    def clear(self) -> None:
        """Forget every event received so far."""
        with self._changed:
            self.events.clear()


def _under(path: object, prefix: str) -> bool:
    """True when the predictor path ``path`` is ``prefix`` or below it."""
    return isinstance(path, str) and (path == prefix or path.startswith(prefix + "."))


__all__ = ["MemorySink"]
