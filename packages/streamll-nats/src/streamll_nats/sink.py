"""NatsSink: events to a JetStream stream, many acknowledged publishes in flight per batch."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import APIError

from streamll.core import cloudevents
from streamll.core.events import Event
from streamll.core.serialization import encode_event
from streamll.errors import ConfigurationError
from streamll.sinks.base import BaseSink
from streamll_nats.jetstream import connect, ensure_stream
from streamll_nats.url import DEFAULT_PORT, NatsOptions, parse_url

logger = logging.getLogger("streamll")

MSG_ID_HEADER = "Nats-Msg-Id"
EXPECTED_STREAM_HEADER = "Nats-Expected-Stream"
CONTENT_TYPE_HEADER = "Content-Type"
CE_PREFIX = "ce-"

ERR_MESSAGE_TOO_LARGE = 10054
PERMANENT_ERRORS = frozenset({ERR_MESSAGE_TOO_LARGE})
"""JetStream error codes that the same message would get again: counted as failed, not retried."""


class PublishError(ConnectionError):
    """Some publishes of a batch were not acknowledged; the batch is retried (the server de-duplicates)."""


def message_headers(event: Event, stream: str | None = None) -> dict[str, str]:
    """Headers of one message: ``Nats-Msg-Id``, the CloudEvents ``ce-*`` attributes and ``Content-Type``.

    With ``stream``, also ``Nats-Expected-Stream``: JetStream refuses the
    message unless that stream stores it.
    """
    headers = cloudevents.headers(event, CE_PREFIX)
    headers[MSG_ID_HEADER] = event.event_id
    headers[CONTENT_TYPE_HEADER] = cloudevents.CONTENT_TYPE
    if stream is not None:
        headers[EXPECTED_STREAM_HEADER] = stream
    return headers


def headers_size(headers: dict[str, str]) -> int:
    """Bytes the headers take on the wire (they count toward the server's max_payload)."""
    return 12 + sum(len(key.encode()) + len(value.encode()) + 4 for key, value in headers.items())


class NatsSink(BaseSink):
    """Publishes events to a NATS JetStream stream.

    ``NatsSink("nats://127.0.0.1:4222?subject=streamll.events&stream=STREAMLL")``
    (see :func:`streamll_nats.url.parse_url` for every option). Each batch is
    published with ``publish_async`` (all messages in flight at once) and
    counts as delivered when JetStream acknowledged every message. Every
    message carries ``Nats-Msg-Id: <event_id>``, so a batch retried after an
    error is de-duplicated by the server; :attr:`duplicates` counts the
    repeats the server recognised.
    """

    batch_size = 500

    def __init__(
        self,
        url: str = f"nats://127.0.0.1:{DEFAULT_PORT}",
        *,
        subject: str | None = None,
        stream: str | None = None,
        **sink_options: Any,
    ) -> None:
        options = parse_url(url).with_destination(subject=subject, stream=stream)
        merged = {**options.sink_options, **sink_options}
        name = merged.pop("name", None) or f"nats:{options.stream}/{options.subject}"
        super().__init__(name=name, **merged)
        self.options: NatsOptions = options
        self.duplicates = 0
        """Publishes JetStream reported as duplicates (an event sent again within the duplicate window)."""
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._lost: asyncio.Event | None = None

    @classmethod
    def from_url(cls, url: str) -> NatsSink:
        """The sink a ``nats://`` or ``tls://`` URL describes (registered for ``configure(sinks=[url])``)."""
        return cls(url)

    @property
    def subject(self) -> str:
        """Subject the events are published on."""
        return self.options.subject

    @property
    def stream(self) -> str:
        """JetStream stream that stores them."""
        return self.options.stream

    # ------------------------------------------------------------------ BaseSink API

    async def open(self) -> None:
        """Connect and make sure the stream exists (created when missing)."""
        lost = asyncio.Event()

        async def on_lost() -> None:
            lost.set()

        async def on_error(exc: Exception) -> None:
            logger.debug("streamll sink %s: NATS client error: %s: %s", self.name, type(exc).__name__, exc)

        # Reconnection is left to BaseSink's retry (aclose + open with backoff), so every
        # outage shows in stats and the in-flight batch is retried at once, not after ack_timeout.
        nc = await connect(
            self.options, allow_reconnect=False, disconnected_cb=on_lost, closed_cb=on_lost, error_cb=on_error
        )
        try:
            js = nc.jetstream(timeout=self.options.ack_timeout, publish_async_max_pending=self.options.max_in_flight)
            await ensure_stream(js, self.options)
        except BaseException as exc:
            await _close(nc)
            if isinstance(exc, ConfigurationError):
                self._log(logging.ERROR, "%s", exc)
            raise
        self._nc, self._js, self._lost = nc, js, lost

    async def aclose(self) -> None:
        """Flush and close the connection."""
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            await _close(nc)

    async def write_batch(self, events: list[Event]) -> int | None:
        """Publish the batch with every message in flight; return when JetStream acknowledged them all."""
        nc, js, lost = self._nc, self._js, self._lost
        if nc is None or js is None or lost is None or not nc.is_connected or lost.is_set():
            raise ConnectionError("not connected to NATS")
        subject, stream = self.options.subject, self.options.stream
        limit = nc.max_payload
        futures: list[asyncio.Future[PubAck]] = []
        too_large = 0
        try:
            for event in events:
                body = encode_event(event)
                headers = message_headers(event, stream)
                size = len(body) + headers_size(headers)
                if size > limit:
                    too_large += 1
                    self._count_failed(f"event {event.event_id} is {size} bytes, over the server's max_payload {limit}")
                    continue
                futures.append(await js.publish_async(subject, body, headers=headers))
            acks = await self._wait_for_acks(futures, lost)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return self._settle(acks, len(events) - too_large)

    # ------------------------------------------------------------------ helpers

    async def _wait_for_acks(self, futures: list[asyncio.Future[PubAck]], lost: asyncio.Event) -> list[Any]:
        """Every ack or error; raises when the connection drops or ``ack_timeout`` passes first."""
        if not futures:
            return []
        acks = asyncio.gather(*futures, return_exceptions=True)
        watch = asyncio.ensure_future(lost.wait())
        try:
            done, _ = await asyncio.wait(
                {acks, watch}, timeout=self.options.ack_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            watch.cancel()
        if acks not in done:
            acks.cancel()
            pending = sum(1 for future in futures if not future.done())
            why = "connection lost" if lost.is_set() else f"no ack within {self.options.ack_timeout:g}s"
            raise PublishError(f"{why}: {pending} of {len(futures)} publishes unacknowledged")
        return acks.result()

    def _settle(self, results: list[Any], published: int) -> int:
        """Count acks, duplicates and failures; raise when a failure is worth retrying."""
        transient: list[BaseException] = []
        permanent = duplicates = 0
        for result in results:
            if isinstance(result, PubAck):
                duplicates += bool(result.duplicate)
            elif isinstance(result, APIError) and result.err_code in PERMANENT_ERRORS:
                permanent += 1
                self._count_failed(f"JetStream refused a message: {result}")
            elif isinstance(result, BaseException):
                transient.append(result)
        if transient:
            first = transient[0]
            raise PublishError(
                f"{len(transient)} of {len(results)} publishes failed ({type(first).__name__}: {first}); retrying batch"
            )
        self.duplicates += duplicates
        return published - permanent

    def _count_failed(self, reason: str) -> None:
        with self._lock:
            self._stats.failed += 1
            self._stats.last_error = reason
        self._log(logging.ERROR, "%s (not retried)", reason)

    def __repr__(self) -> str:
        return f"<NatsSink {self.name!r} {self.options.masked_url()!r} running={self.is_running}>"


async def _close(nc: Client, timeout: float = 5.0) -> None:
    try:
        await asyncio.wait_for(nc.close(), timeout)
    except Exception as exc:
        logger.debug("streamll: closing a NATS connection raised %r", exc)


__all__ = ["MSG_ID_HEADER", "NatsSink", "PublishError", "headers_size", "message_headers"]
