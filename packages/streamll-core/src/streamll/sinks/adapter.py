"""SinkAdapter: any object with ``handle_event`` used as a sink, with BaseSink's buffering and isolation.

streamll 0.1 took any object with ``handle_event`` (and optionally ``start``,
``stop`` and ``is_running``), sync or async. ``configure``, ``@instrument`` and
``trace`` wrap such an object in a :class:`SinkAdapter`, so it runs on the
background worker: the program never waits on it, and its exceptions are
counted in ``stats.failed`` instead of reaching the program.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any

from streamll.core.events import Event
from streamll.sinks.base import BaseSink
from streamll.sinks.results import BatchResult
from streamll.v01 import v01_data


def is_duck_sink(value: Any) -> bool:
    """True for an object that is not a BaseSink but has a callable ``handle_event``."""
    return not isinstance(value, BaseSink) and callable(getattr(value, "handle_event", None))


async def _call(function: Any, *args: Any) -> Any:
    """Call a sync or async function from the worker loop (a sync one on a helper thread)."""
    if inspect.iscoroutinefunction(function):
        return await function(*args)
    result = await asyncio.to_thread(function, *args)
    if inspect.isawaitable(result):
        result = await result
    return result


class SinkAdapter(BaseSink):
    """Delivers events to ``target.handle_event`` (sync or async) from the background worker.

    ``target.start()`` runs before the first delivery when ``target.is_running``
    is not already true; ``target.stop()`` runs when the adapter stops. The
    target gets a copy of each event whose ``data`` also holds what 0.1 sinks
    read there (``set_context`` ids, ``duration`` in seconds), when that adds anything.
    """

    def __init__(self, target: Any, **options: Any) -> None:
        """Wrap ``target``; the sink is named after the target's class unless ``name=`` is given."""
        options.setdefault("name", type(target).__name__)
        super().__init__(**options)
        self.target = target
        self._async = inspect.iscoroutinefunction(target.handle_event)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> None:
        """Start the target unless it says it is running."""
        self._loop = asyncio.get_running_loop()
        start = getattr(self.target, "start", None)
        if callable(start) and getattr(self.target, "is_running", False) is not True:
            await _call(start)

    async def aclose(self) -> None:
        """Stop the target if it has ``stop`` and does not say it is stopped already."""
        stop = getattr(self.target, "stop", None)
        if callable(stop) and getattr(self.target, "is_running", True) is not False:
            await _call(stop)

    def handle_event(self, event: Event) -> None:
        """Hand one event to a sync ``handle_event`` (on a helper thread); an awaitable it returns is awaited."""
        result = self.target.handle_event(_v01_view(event))
        if inspect.isawaitable(result) and self._loop is not None:
            asyncio.run_coroutine_threadsafe(_as_coroutine(result), self._loop).result()

    async def write_batch(self, events: list[Event]) -> BatchResult | int | None:
        """Deliver each event; one that raises is rejected alone and the rest still go."""
        if not self._async:
            return await super().write_batch(events)
        delivered = 0
        rejected: list[str] = []
        for event in events:
            try:
                await self.target.handle_event(_v01_view(event))
                delivered += 1
            except Exception as exc:
                rejected.append(f"handle_event raised {type(exc).__name__}: {exc}")
        return BatchResult.of(delivered, rejected)

    def __repr__(self) -> str:
        """The wrapped target and whether the adapter is running."""
        return f"<SinkAdapter for {self.target!r} running={self.is_running}>"


def _v01_view(event: Event) -> Event:
    data = v01_data(event)
    return event if data is None else event.model_copy(update={"data": data})


async def _as_coroutine(awaitable: Any) -> Any:
    return await awaitable


_adapters: dict[int, tuple[Any, SinkAdapter]] = {}
"""Adapters by ``id(target)``, keeping the target alive (sinks are few and long-lived)."""
_lock = threading.Lock()


def adapt(target: Any) -> SinkAdapter:
    """The one adapter for ``target`` (the same object passed twice gets the same adapter)."""
    with _lock:
        entry = _adapters.get(id(target))
        if entry is None or entry[0] is not target:
            entry = (target, SinkAdapter(target))
            _adapters[id(target)] = entry
        return entry[1]


__all__ = ["SinkAdapter", "adapt", "is_duck_sink"]
