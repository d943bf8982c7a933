"""Plugins and an in-memory consumer for the plugin, CLI and consumer tests.

Entry points in the tests point here, e.g. ``EntryPoint(name="good",
value="tests.core.fake_plugins:GoodPlugin", group="streamll")``; this module
itself is a plugin too (module-level hooks, scheme ``fakemod``), the way a
third-party package ships one with a single entry point.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Iterable
from typing import Any, ClassVar
from urllib.parse import urlsplit

import streamll
from streamll.consumer import BaseConsumer, Received
from streamll.hookspecs import OldName, PluginCard
from streamll.sinks.memory import MemorySink


class Handle:
    """A message handle (weak-referenceable, so tests can see who keeps it)."""

    __slots__ = ("__weakref__", "position")

    def __init__(self, position: int) -> None:
        self.position = position

    def __repr__(self) -> str:
        return f"Handle({self.position})"


class QueueConsumer(BaseConsumer[Handle]):
    """A transport in memory: ``put(body)`` publishes; ``acked`` lists acknowledged positions."""

    def __init__(self, bodies: Iterable[bytes] = (), *, url: str | None = None, **filters: Any) -> None:
        super().__init__(**filters)
        self.url = url
        self.acked: list[int] = []
        self.handed_out: list[weakref.ref[Handle]] = []
        """Every handle given to BaseConsumer, weakly: who keeps them alive?"""
        self.fail_next_ack = False
        self.connected = False
        self._pending = list(bodies)
        self._queue: asyncio.Queue[tuple[bytes, Handle]] | None = None
        self._published = 0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> QueueConsumer:
        return cls(url=url, **options)

    def put(self, body: bytes) -> None:
        """Publish one raw message (call on the consumer's loop, or before ``start``)."""
        if self._queue is None:
            self._pending.append(body)
            return
        self._queue.put_nowait((body, Handle(self._published)))
        self._published += 1

    async def _connect(self) -> None:
        self._queue = asyncio.Queue()
        self.connected = True
        for body in self._pending:
            self.put(body)
        self._pending.clear()

    async def _disconnect(self) -> None:
        self.connected = False

    async def _receive(self, timeout: float | None) -> Received[Handle] | None:
        assert self._queue is not None
        try:
            body, handle = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        self.handed_out.append(weakref.ref(handle))
        return Received(body, handle)

    async def _ack_message(self, handle: Handle) -> None:
        if self.fail_next_ack:
            self.fail_next_ack = False
            raise ConnectionError("ack lost")
        self.acked.append(handle.position)


class SchemeSink(MemorySink):
    """A memory sink built from a ``myscheme://NAME`` (or ``fakemod://NAME``) URL."""

    built: ClassVar[list[SchemeSink]] = []

    def __init__(self, url: str) -> None:
        super().__init__(name=f"{urlsplit(url).scheme}:{urlsplit(url).netloc}")
        self.url = url
        SchemeSink.built.append(self)


class GoodPlugin:
    """Registers ``myscheme`` for sinks and consumers."""

    @staticmethod
    @streamll.hookimpl
    def streamll_register_sinks(register: Callable[..., Any]) -> None:
        register("myscheme", SchemeSink)

    @staticmethod
    @streamll.hookimpl
    def streamll_register_consumers(register: Callable[..., Any]) -> None:
        register("myscheme", QueueConsumer.from_url)


class CardPlugin:
    """Describes itself: extra ``pigeon``, schemes ``pigeon`` and ``coop`` (registered only for consumers)."""

    @staticmethod
    @streamll.hookimpl
    def streamll_plugin_card() -> PluginCard:
        return PluginCard("pigeon", ("pigeon", "coop"), "tests.core.fake_plugins:QueueConsumer")

    @staticmethod
    @streamll.hookimpl
    def streamll_register_consumers(register: Callable[..., Any]) -> None:
        register("coop", QueueConsumer.from_url)


class OldNamePlugin:
    """Provides 0.1's ``RedisSink`` as :class:`SchemeSink`, saying to write ``SchemeSink('myscheme://')`` instead."""

    @staticmethod
    @streamll.hookimpl
    def streamll_plugin_card() -> PluginCard:
        old = OldName("RedisSink", "tests.core.fake_plugins:SchemeSink", "SchemeSink('myscheme://')")
        return PluginCard(None, ("myscheme",), None, (old,))


class ExplodingPlugin:
    """Registers ``halfway``, then its hook raises."""

    @staticmethod
    @streamll.hookimpl
    def streamll_register_sinks(register: Callable[..., Any]) -> None:
        register("halfway", SchemeSink)
        raise RuntimeError("plugin bug while registering")


class NonCallablePlugin:
    """Registers something that cannot build a sink."""

    @staticmethod
    @streamll.hookimpl
    def streamll_register_sinks(register: Callable[..., Any]) -> None:
        register("notcallable", "not a factory")


@streamll.hookimpl
def streamll_register_sinks(register: Callable[..., Any]) -> None:
    """This module as a plugin: ``fakemod://NAME``."""
    register("fakemod", SchemeSink)
