"""Consumers read events back from a transport.

:class:`BaseConsumer` holds everything transports share: decoding, filtering,
reporting malformed messages, the ``async for`` / ``async with`` protocol and
counters. A transport implements :meth:`BaseConsumer._connect`,
:meth:`BaseConsumer._receive`, :meth:`BaseConsumer._ack_message` and
:meth:`BaseConsumer._disconnect`.

The transport consumers are importable from here once their plugin is
installed: ``from streamll.consumer import RedisStreamConsumer``.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import AsyncIterator, Iterable
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any, Generic, TypeVar

from streamll.core.events import Event
from streamll.core.serialization import decode_event
from streamll.errors import ConsumerError, MalformedEventError
from streamll.plugins import create_consumer, plugin_consumer

logger = logging.getLogger("streamll")

M = TypeVar("M")
"""The transport's own message handle (used to acknowledge it)."""

_MISSING: Any = object()


def _forget(handles: dict[str, Any], event_id: str, handle: Any) -> None:
    """Drop the handle of an event that was garbage-collected without being acknowledged."""
    if handles.get(event_id, _MISSING) is handle:
        handles.pop(event_id, None)


@dataclass
class ConsumerStats:
    """What a consumer has seen."""

    consumed: int = 0
    """Events returned to the caller."""
    acked: int = 0
    """Events (or skipped messages) acknowledged."""
    malformed: int = 0
    """Messages that were not v1 events: reported, acknowledged and skipped."""
    filtered: int = 0
    """Events skipped by the ``event_types`` / ``execution_id`` filters."""
    reconnects: int = 0
    """Times the consumer re-established its connection."""
    last_error: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The counters as a plain dict."""
        return asdict(self)


@dataclass
class Received(Generic[M]):
    """One raw message from the transport: its body and the handle to ack it with."""

    body: bytes
    handle: M


class BaseConsumer(Generic[M]):
    """Shared consumer behaviour; subclass per transport.

    ``event_types`` and ``execution_id`` filter what :meth:`consume_one`
    returns (filtered messages are acknowledged, so a group does not see them
    again).
    """

    def __init__(self, *, event_types: Iterable[str] | str | None = None, execution_id: str | None = None) -> None:
        """Keep only events of ``event_types`` (a name or names) and of ``execution_id``, when given."""
        if isinstance(event_types, str):
            event_types = [event_types]
        self.event_types = frozenset(event_types) if event_types is not None else None
        self.execution_id = execution_id
        self.stats = ConsumerStats()
        self._started = False
        self._handles: dict[str, M] = {}

    # ------------------------------------------------------------------ transport API

    async def _connect(self) -> None:
        """Open connections and position the reader."""
        raise NotImplementedError

    async def _disconnect(self) -> None:
        """Close connections."""
        raise NotImplementedError

    async def _receive(self, timeout: float | None) -> Received[M] | None:
        """The next raw message, or None when ``timeout`` seconds pass with none (None: wait)."""
        raise NotImplementedError

    async def _ack_message(self, handle: M) -> None:
        """Acknowledge one message (no-op for transports without acknowledgement)."""

    # ------------------------------------------------------------------ public API

    @property
    def is_started(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._started

    async def start(self) -> None:
        """Connect and start reading (idempotent)."""
        if self._started:
            return
        await self._connect()
        self._started = True

    async def stop(self) -> None:
        """Stop reading and close connections (idempotent)."""
        if not self._started:
            return
        self._started = False
        await self._disconnect()

    aclose = stop

    async def consume_one(self, timeout: float | None = None) -> Event | None:
        """The next event that passes the filters.

        Waits up to ``timeout`` seconds (``None``: until one arrives) and
        returns ``None`` if none did. Malformed messages are logged, counted,
        acknowledged and skipped.
        """
        if not self._started:
            raise ConsumerError(f"{type(self).__name__} is not started; call `await consumer.start()` first")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            message = await self._receive(remaining)
            if message is None:
                if deadline is None or time.monotonic() < deadline:
                    if not self._started:
                        return None
                    continue
                return None
            event = self._decode(message)
            if event is None:
                await self._ack_quietly(message.handle)
                continue
            if not self._wanted(event):
                self.stats.filtered += 1
                await self._ack_quietly(message.handle)
                continue
            self._remember(event, message.handle)
            self.stats.consumed += 1
            return event

    async def ack(self, event: Event) -> None:
        """Acknowledge an event returned by :meth:`consume_one` (a group will not deliver it again).

        If the transport fails to acknowledge, the error propagates and the
        event can be acknowledged again.
        """
        handle = self._handles.get(event.event_id, _MISSING)
        if handle is _MISSING:
            raise ConsumerError(f"event {event.event_id} was not delivered by this consumer or is already acked")
        await self._ack_message(handle)
        _forget(self._handles, event.event_id, handle)
        self.stats.acked += 1

    def _remember(self, event: Event, handle: M) -> None:
        """Keep ``handle`` for :meth:`ack` while ``event`` is alive, so a consumer that never acks does not grow."""
        self._handles[event.event_id] = handle
        weakref.finalize(event, _forget, self._handles, event.event_id, handle).atexit = False

    # ------------------------------------------------------------------ helpers

    def _decode(self, message: Received[M]) -> Event | None:
        """The event in ``message``, or None (counted, logged) for any body that is not one.

        Whatever the bytes, this never raises: a message that escaped here would
        end an ``async for`` loop and stay unacknowledged, delivered again forever.
        """
        try:
            return decode_event(message.body)
        except MalformedEventError as exc:
            reason = str(exc)
        except Exception as exc:  # a body no rule foresaw: skip it rather than poison the stream
            reason = f"cannot decode: {type(exc).__name__}: {exc}"
        self.stats.malformed += 1
        self.stats.last_error = reason
        preview = message.body[:80] if isinstance(message.body, (bytes, str)) else type(message.body).__name__
        logger.warning(
            "streamll consumer %s: skipped a malformed message (%s): %r", type(self).__name__, reason, preview
        )
        return None

    def _wanted(self, event: Event) -> bool:
        if self.event_types is not None and event.event_type not in self.event_types:
            return False
        return self.execution_id is None or event.execution_id == self.execution_id

    async def _ack_quietly(self, handle: M) -> None:
        try:
            await self._ack_message(handle)
            self.stats.acked += 1
        except Exception as exc:
            logger.warning("streamll consumer %s: ack of a skipped message failed: %s", type(self).__name__, exc)

    # ------------------------------------------------------------------ protocols

    async def __aenter__(self) -> BaseConsumer[M]:
        """Start the consumer."""
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the consumer."""
        await self.stop()

    def __aiter__(self) -> AsyncIterator[Event]:
        """Events as they arrive, until the consumer stops."""
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while self._started:
            event = await self.consume_one(timeout=1.0)
            if event is not None:
                yield event


def __getattr__(name: str) -> Any:
    """A plugin's consumer class by name (``RedisStreamConsumer``), imported on first use.

    The names come from the plugins' cards (and, for a first-party plugin that is not
    installed, from the catalogue, so the error says which extra to install).
    """
    card = plugin_consumer(name) if not name.startswith("_") else None
    if card is None or card.consumer is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return card.load(name, card.consumer)


def from_url(url: str, **options: Any) -> BaseConsumer[Any]:
    """A consumer for ``url`` from whichever plugin registered its scheme."""
    consumer: BaseConsumer[Any] = create_consumer(url, **options)
    return consumer


__all__ = [
    "BaseConsumer",
    "ConsumerStats",
    "KafkaStreamConsumer",  # noqa: F822 - provided lazily by __getattr__ from the plugin
    "NatsStreamConsumer",  # noqa: F822
    "Received",
    "RedisStreamConsumer",  # noqa: F822
    "from_url",
]
