"""NatsSink: events to a JetStream stream, many acknowledged publishes in flight per batch."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Unpack

from nats.aio.client import Client
from nats.js.api import PubAck
from nats.js.errors import APIError
from streamll.core import cloudevents
from streamll.core.events import Event
from streamll.core.serialization import encode_event
from streamll.sinks.base import BaseSink
from streamll.sinks.results import BatchResult
from streamll.url_options import SinkOptions, sink_arguments

from streamll_nats.jetstream import close_quietly, connect, ensure_stream
from streamll_nats.publisher import AckPublisher
from streamll_nats.url import DEFAULT_PORT, NatsOptions, parse_url

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
    (see :func:`streamll_nats.url.parse_url` for every option; keyword
    ``sink_options`` are ``BaseSink``'s and win over the URL's). Each batch is
    published with every message in flight at once (up to ``max_in_flight``)
    and counts as delivered when JetStream acknowledged every message. Every
    message carries ``Nats-Msg-Id: <event_id>``, so a batch retried after an
    error is de-duplicated by the server; :attr:`duplicates` counts the
    repeats the server recognised.
    """

    batch_size = 500
    encodes_records = True
    pipeline_depth = 4

    def __init__(
        self,
        url: str = f"nats://127.0.0.1:{DEFAULT_PORT}",
        *,
        subject: str | None = None,
        stream: str | None = None,
        **sink_options: Unpack[SinkOptions],
    ) -> None:
        """Options from ``url``, ``subject=`` / ``stream=`` overriding it; nothing connects until the first batch."""
        options = parse_url(url).with_destination(subject=subject, stream=stream)
        default_name = f"nats:{options.stream}/{options.subject}"
        super().__init__(**sink_arguments(options.sink_options, sink_options, default_name=default_name))
        self.options: NatsOptions = options
        self.duplicates = 0
        """Publishes JetStream reported as duplicates (an event sent again within the duplicate window)."""
        self._nc: Client | None = None
        self._publisher: AckPublisher | None = None
        self._url = url if subject is None and stream is None else None

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

    @property
    def execution_log_url(self) -> str | None:
        """The URL a relay (and cancellation) reads this sink's executions by, with ``per_execution=true``."""
        return self._url if self.options.per_execution else None

    # ------------------------------------------------------------------ BaseSink API

    async def open(self) -> None:
        """Connect and make sure the stream exists (created when missing)."""
        publisher: AckPublisher | None = None

        async def on_lost() -> None:
            if publisher is not None:
                publisher.fail_all(ConnectionError("connection to NATS lost"))

        # Reconnection is BaseSink's retry (aclose + open with backoff): every outage shows
        # in stats, and the batch in flight is retried at once instead of after ack_timeout.
        nc = await connect(
            self.options, who=f"sink {self.name}", allow_reconnect=False, disconnected_cb=on_lost, closed_cb=on_lost
        )
        try:
            await ensure_stream(nc.jetstream(timeout=self.options.ack_timeout), self.options)
            publisher = AckPublisher(nc)
            await publisher.start()
        except BaseException:
            await close_quietly(nc)
            raise
        self._nc, self._publisher = nc, publisher

    async def aclose(self) -> None:
        """Flush and close the connection."""
        nc, self._nc, self._publisher = self._nc, None, None
        if nc is not None:
            await close_quietly(nc)

    def encode(self, event: Event) -> tuple[bytes, dict[str, str], int, str, str]:
        """Body, headers, size on the wire, id and subject of one message (raises for text UTF-8 cannot hold)."""
        body = encode_event(event)
        headers = message_headers(event, self.options.stream)
        subject = self.options.publish_subject(event.execution_id)
        return body, headers, len(body) + headers_size(headers), event.event_id, subject

    def record_body(self, record: Any) -> bytes:
        """The message body: the v1 JSON event."""
        return record[0]  # type: ignore[no-any-return]

    async def send_batch(self, records: list[Any]) -> Awaitable[BatchResult]:
        """Publish the batch in order; the returned awaitable resolves once JetStream acknowledged it all.

        Several batches are in flight at once (``pipeline_depth``); within one,
        at most the URL's ``max_in_flight`` messages await their ack. The
        completion raises (so the batch is retried, and de-duplicated by
        ``Nats-Msg-Id``) when a publish fails, the connection drops or
        ``ack_timeout`` passes.
        """
        nc, publisher = self._nc, self._publisher
        if nc is None or publisher is None or not nc.is_connected:
            raise ConnectionError("not connected to NATS")
        limit, window = nc.max_payload, self.options.max_in_flight
        results: list[Any] = []
        futures: list[asyncio.Future[PubAck]] = []
        too_large: list[str] = []
        try:
            for body, headers, size, event_id, subject in records:
                if size > limit:
                    too_large.append(f"event {event_id} is {size} bytes, over the server's max_payload {limit}")
                    continue
                futures.append(await publisher.publish(subject, body, headers))
                if publisher.pending >= window:
                    results += await self._await_acks(futures)
                    futures = []
        except BaseException:
            publisher.forget()
            raise
        return self._complete(futures, results, too_large)

    async def _complete(
        self, futures: list[asyncio.Future[PubAck]], results: list[Any], too_large: list[str]
    ) -> BatchResult:
        return self._tally_acks(results + await self._await_acks(futures), too_large)

    async def write_batch(self, events: list[Any]) -> BatchResult:
        """Publish encoded records and wait for every ack (``send_batch`` and its completion in one call)."""
        return await (await self.send_batch(events))

    # ------------------------------------------------------------------ helpers

    async def _await_acks(self, futures: list[asyncio.Future[PubAck]]) -> list[Any]:
        """Every ack or error; raises when ``ack_timeout`` passes first."""
        if not futures:
            return []
        _done, pending = await asyncio.wait(futures, timeout=self.options.ack_timeout)
        if pending:
            raise PublishError(
                f"no ack within {self.options.ack_timeout:g}s for {len(pending)} of {len(futures)} publishes"
            )
        return [future.exception() or future.result() for future in futures]

    def _tally_acks(self, results: list[Any], too_large: list[str]) -> BatchResult:
        """What was stored and what JetStream refused for good; raises when a failure is worth retrying.

        Failures that a retry would repeat (too large) are reported once, when
        the batch completes, so a retried batch does not count them twice.
        """
        transient: list[BaseException] = []
        refused = list(too_large)
        stored = duplicates = 0
        for result in results:
            if isinstance(result, PubAck):
                stored += 1
                duplicates += bool(result.duplicate)
            elif isinstance(result, APIError) and result.err_code in PERMANENT_ERRORS:
                refused.append(f"JetStream refused a message: {result}")
            elif isinstance(result, BaseException):
                transient.append(result)
        if transient:
            first = transient[0]
            raise PublishError(
                f"{len(transient)} of {len(results)} publishes failed ({type(first).__name__}: {first}); retrying batch"
            )
        self.duplicates += duplicates
        return BatchResult.of(stored, refused)

    def __repr__(self) -> str:
        """Name, URL without credentials, and whether the sink is running."""
        return f"<NatsSink {self.name!r} {self.options.display_url!r} running={self.is_running}>"


__all__ = ["MSG_ID_HEADER", "NatsSink", "PublishError", "headers_size", "message_headers"]
