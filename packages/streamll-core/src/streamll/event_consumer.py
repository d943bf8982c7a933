"""EventConsumer: handler-style reading of events, on every transport.

::

    consumer = EventConsumer("redis://localhost:6379", target="streamll")

    @consumer.on("token")
    async def show(event):
        print(event.token, end="", flush=True)

    await consumer.run()  # until consumer.stop()

It wraps the transport's consumer (:func:`streamll.consumer.from_url`), so
it reads whatever that consumer reads, including streams written by
streamll 0.1 producers on Redis.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from streamll.consumer import BaseConsumer, from_url
from streamll.core.events import Event
from streamll.errors import ConfigurationError, ConsumerError
from streamll.v01 import v01_data

logger = logging.getLogger("streamll")

BROKER_URL_ENV = "STREAMLL_BROKER_URL"
TARGET_ENV = "STREAMLL_TARGET"
ANY = "*"
"""Register a handler for every event type with ``@consumer.on("*")``."""

TARGET_OPTION = {
    "redis": "stream",
    "rediss": "stream",
    "unix": "stream",
    "nats": "subject",
    "tls": "subject",
    "kafka": "topic",
    "kafka+ssl": "topic",
}
"""The consumer option ``target`` sets on each first-party transport; other schemes get ``target=`` as is."""

LEGACY_TYPES = {"llm_start": "start", "llm_end": "end"}
"""0.1's LM event types: now ``start`` / ``end`` events with ``operation == "lm"``."""

Handler = Callable[[Event], Awaitable[Any] | Any]
H = TypeVar("H", bound=Handler)


@dataclass
class HandlerStats:
    """What the handlers did."""

    handled: int = 0
    """Events passed to at least one handler."""
    handler_errors: int = 0
    """Handler calls that raised (the loop goes on)."""
    ack_errors: int = 0
    """Acknowledgements that failed (the transport delivers the event again)."""
    last_error: str | None = None

    def as_dict(self) -> dict[str, object]:
        """The counters as a plain dict."""
        return asdict(self)


def _transport_options(url: str, target: str | None, options: dict[str, Any]) -> dict[str, Any]:
    if target:
        scheme = urlsplit(url).scheme.lower()
        options = {TARGET_OPTION.get(scheme, "target"): target, **options}
    return options


class EventConsumer:
    """Calls your handlers for each event read from a broker.

    Args:
        broker_url: the transport URL (``redis://...``, ``nats://...``,
            ``kafka://...``); default ``$STREAMLL_BROKER_URL``.
        target: the stream (Redis), subject (NATS) or topic (Kafka); default
            ``$STREAMLL_TARGET``, else the URL's or the transport's default.
        group: read as a member of this consumer group; each event is
            acknowledged after its handlers return, so an event whose handler
            raised is delivered again (set ``ack_on_error=True`` to skip it).
        options: passed to the transport's consumer (``from_beginning=True``,
            ``consumer="name"``, ...).

    Handlers (sync or async) are registered with :meth:`on`. A handler that
    raises is logged and counted in ``stats.handler_errors``; the loop goes on.
    Handlers see what 0.1 handlers read in ``event.data``, added without
    overwriting anything: the ``set_context`` ids (also in ``event.tags``) and
    ``duration`` in seconds (also ``duration_ms``).
    """

    def __init__(
        self,
        broker_url: str | None = None,
        target: str | None = None,
        *,
        group: str | None = None,
        ack_on_error: bool = False,
        **options: Any,
    ) -> None:
        """Set the consumer up; nothing connects until :meth:`start` (or ``async with``)."""
        url = broker_url or os.environ.get(BROKER_URL_ENV)
        if not url:
            raise ConfigurationError(
                f"EventConsumer needs a broker URL: EventConsumer('redis://localhost:6379', target='streamll') "
                f"or {BROKER_URL_ENV}"
            )
        if urlsplit(url).scheme.lower() in ("amqp", "amqps", "rabbitmq"):
            raise ConfigurationError(
                "RabbitMQ is not a streamll transport since 0.2: use Redis, NATS or Kafka, "
                "e.g. EventConsumer('redis://localhost:6379', target='streamll') with pip install 'streamll[redis]'"
            )
        self.broker_url = url
        self.target = target or os.environ.get(TARGET_ENV) or None
        if group is not None:
            options["group"] = group
        self._types_given = "event_types" in options
        self.consumer: BaseConsumer[Any] = from_url(url, **_transport_options(url, self.target, options))
        """The transport's consumer doing the reading."""
        self.group = group
        self.ack_on_error = ack_on_error
        self.stats = HandlerStats()
        self._handlers: dict[str, list[Handler]] = {}
        self._stopping = False
        self._last_logged: tuple[str, float] = ("", 0.0)

    # ------------------------------------------------------------------ registering

    def on(self, event_type: str) -> Callable[[H], H]:
        """Register a handler for ``event_type`` (``"*"`` for every event): ``@consumer.on("token")``."""
        if not isinstance(event_type, str) or not event_type:
            raise ConfigurationError(f"on() takes an event type such as 'token' or '*', got {event_type!r}")
        if event_type in LEGACY_TYPES:
            warnings.warn(
                f'on("{event_type}") is deprecated: LM calls are "{LEGACY_TYPES[event_type]}" events with '
                f'operation "lm"; write @consumer.on("{LEGACY_TYPES[event_type]}") and check event.operation == "lm"',
                DeprecationWarning,
                stacklevel=2,
            )

        def register(handler: H) -> H:
            if not callable(handler):
                raise ConfigurationError(f"a handler must be callable, got {handler!r}")
            self._handlers.setdefault(event_type, []).append(handler)
            return handler

        return register

    def _wanted_types(self) -> frozenset[str] | None:
        """Event types some handler wants (``None``: all), so the transport skips the rest."""
        if ANY in self._handlers:
            return None
        return frozenset(LEGACY_TYPES.get(name, name) for name in self._handlers)

    def handlers_for(self, event: Event) -> list[Handler]:
        """The handlers ``event`` goes to, in registration order per type."""
        found = list(self._handlers.get(event.event_type, ()))
        if event.operation == "lm":
            for legacy, current in LEGACY_TYPES.items():
                if event.event_type == current:
                    found += self._handlers.get(legacy, ())
        found += self._handlers.get(ANY, ())
        return found

    # ------------------------------------------------------------------ running

    @property
    def is_started(self) -> bool:
        """True while the transport consumer is connected."""
        return self.consumer.is_started

    async def start(self) -> None:
        """Connect (idempotent); :meth:`run` does this for you."""
        self._stopping = False
        if self._handlers and not self._types_given:  # the transport skips (and acks) what no handler wants
            self.consumer.event_types = self._wanted_types()
        await self.consumer.start()

    async def stop(self) -> None:
        """Stop :meth:`run` after the current event and close the connection."""
        self._stopping = True
        await self.consumer.stop()

    async def run(self) -> None:
        """Read events and call their handlers until :meth:`stop` is called (or the task is cancelled)."""
        if not self.consumer.is_started:
            await self.start()
        while not self._stopping and self.consumer.is_started:
            try:
                event = await self.consumer.consume_one(timeout=0.5)
            except ConsumerError:
                if self._stopping:  # stop() closed the consumer under a read
                    break
                raise
            if event is not None:
                await self.handle(event)

    async def handle(self, event: Event) -> None:
        """Call the handlers of one event, then acknowledge it (unless a handler raised, see ``ack_on_error``)."""
        handlers = self.handlers_for(event)
        failed = False
        if handlers:
            self.stats.handled += 1
            _v01_fields(event)
        for handler in handlers:
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                failed = True
                self.stats.handler_errors += 1
                self.stats.last_error = f"{getattr(handler, '__name__', handler)!s}: {type(exc).__name__}: {exc}"
                self._log_error(handler, event, exc)
        if failed and not self.ack_on_error:
            return
        try:
            await self.consumer.ack(event)
        except Exception as exc:
            self.stats.ack_errors += 1
            self.stats.last_error = f"ack: {type(exc).__name__}: {exc}"
            logger.warning("streamll EventConsumer: could not acknowledge event %s: %s", event.event_id, exc)

    def _log_error(self, handler: Handler, event: Event, exc: Exception) -> None:
        """Log a handler error, at most once a second for the same handler and error type."""
        name = getattr(handler, "__qualname__", repr(handler))
        key = f"{name}:{type(exc).__name__}"
        now = time.monotonic()
        if key == self._last_logged[0] and now - self._last_logged[1] < 1.0:
            return
        self._last_logged = (key, now)
        logger.error(
            "streamll EventConsumer: handler %s raised on a %r event (%s: %s); %d handler error(s) so far",
            name,
            event.event_type,
            type(exc).__name__,
            exc,
            self.stats.handler_errors,
            exc_info=exc,
        )

    # ------------------------------------------------------------------ 0.1 names

    @property
    def app(self) -> EventConsumer:
        """Deprecated: 0.1's FastStream app; ``consumer.app.run()`` now runs this consumer."""
        warnings.warn(
            "EventConsumer.app is deprecated: write `await consumer.run()` (and `await consumer.stop()` to end it)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self

    @property
    def broker(self) -> Any:
        """Removed: 0.1's FastStream broker."""
        raise ConfigurationError(
            "EventConsumer.broker (a FastStream broker in 0.1) is gone: use consumer.consumer, the transport's "
            "streamll consumer, or register handlers with @consumer.on(...)"
        )

    def subscriber(self, **kwargs: Any) -> Any:
        """Removed: 0.1's FastStream subscriber decorator."""
        raise ConfigurationError(
            "EventConsumer.subscriber() (FastStream in 0.1) is gone: register handlers with @consumer.on(event_type)"
        )

    async def __aenter__(self) -> EventConsumer:
        """Start consuming."""
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Stop consuming."""
        await self.stop()

    def __repr__(self) -> str:
        """The consumer it reads from and the event types it has handlers for."""
        types = ", ".join(sorted(self._handlers)) or "no handlers"
        return f"<EventConsumer {self.consumer!r} ({types})>"


def _v01_fields(event: Event) -> None:
    """Add what 0.1 handlers read in ``data``, never overwriting: the ``tags`` and ``duration`` in seconds."""
    data = v01_data(event)
    if data is not None:
        event.data = data


__all__ = ["ANY", "BROKER_URL_ENV", "TARGET_ENV", "EventConsumer", "HandlerStats"]
