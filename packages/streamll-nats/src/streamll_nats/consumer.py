"""NatsStreamConsumer: reads events back from a JetStream stream with a pull consumer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError
from streamll.backoff import Backoff
from streamll.consumer import BaseConsumer, Received
from streamll.core.events import Event
from streamll.errors import ConfigurationError, ConsumerError

from streamll_nats.jetstream import close_quietly, connect, ensure_stream
from streamll_nats.url import DEFAULT_PORT, NatsOptions, parse_url

logger = logging.getLogger("streamll")

ACK = b"+ACK"
NAK = b"-NAK"
FETCH_WAIT_MAX = 5.0
"""Longest single pull request; waiting longer is several of them, so a lost consumer is noticed."""
VERIFY_EVERY = 10.0
"""Seconds without a message after which the consumer is checked to still exist."""

RECONNECT = Backoff(0.1, 3.2)
"""Waits between reconnect attempts of a consumer whose connection or pull consumer is gone."""


class NatsStreamConsumer(BaseConsumer[Msg]):
    """Events from a JetStream stream, through a pull consumer.

    * ``durable="NAME"``: a durable consumer with explicit acks. It survives
      restarts of this program and of the server and resumes after the last
      acknowledged event; an event returned but not acknowledged is delivered
      again after ``ack_wait`` seconds (or at once after :meth:`stop`, which
      gives back what it did not ack). Several consumers with the same
      ``durable`` share the work.
    * no ``durable``: an ephemeral consumer that needs no acks, reading new
      events (or all, with ``from_beginning=True``); the server removes it
      ``inactive_threshold`` seconds after this program stops pulling.

    Options not given as arguments come from the URL query (``?durable=``,
    ``?from_beginning=``, ``?ack_wait=``, ...), then the defaults.
    """

    def __init__(
        self,
        url: str = f"nats://127.0.0.1:{DEFAULT_PORT}",
        *,
        subject: str | None = None,
        stream: str | None = None,
        durable: str | None = None,
        from_beginning: bool | None = None,
        event_types: Iterable[str] | str | None = None,
        execution_id: str | None = None,
        ack_wait: float | None = None,
        fetch_batch: int | None = None,
        inactive_threshold: float | None = None,
        group: str | None = None,
    ) -> None:
        """Read the stream of ``url``; keyword arguments override the URL's options. Connects on ``start()``."""
        super().__init__(event_types=event_types, execution_id=execution_id)
        if group is not None:  # the name every other streamll consumer uses for a resumable reader
            if durable is not None and durable != group:
                raise ConfigurationError(f"group={group!r} and durable={durable!r} disagree; give one of them")
            durable = group
        options = parse_url(url).with_destination(subject=subject, stream=stream)
        query = options.consumer_options
        self.options: NatsOptions = options
        self.durable: str | None = durable if durable is not None else query.get("durable")
        self.from_beginning = bool(from_beginning if from_beginning is not None else query.get("from_beginning", False))
        self.ack_wait = float(ack_wait if ack_wait is not None else query.get("ack_wait", 30.0))
        self.fetch_batch = int(fetch_batch if fetch_batch is not None else query.get("fetch_batch", 100))
        self.inactive_threshold = float(
            inactive_threshold if inactive_threshold is not None else query.get("inactive_threshold", 60.0)
        )
        if self.durable is not None and not _valid_name(self.durable):
            raise ConfigurationError(
                f"durable={self.durable!r} is not a valid consumer name (no spaces, '.', '*', '>')"
            )
        if self.ack_wait <= 0 or self.fetch_batch < 1 or self.inactive_threshold <= 0:
            raise ConfigurationError("ack_wait and inactive_threshold must be > 0 and fetch_batch >= 1")
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._consumer_name: str | None = None
        self._buffer: deque[Msg] = deque()
        self._position = 0
        """Stream sequence of the last message fetched: where a lost consumer is re-created from."""
        self._verify = False
        self._failures = 0
        self._last_pull = self._last_check = time.monotonic()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> NatsStreamConsumer:
        """The consumer for a ``nats://`` or ``tls://`` URL (registered for ``streamll.consumer.from_url``)."""
        return cls(url, **options)

    @property
    def subject(self) -> str:
        """Subject the consumer filters on (``<subject>.>`` when events are published per execution)."""
        return self.options.read_subject

    @property
    def stream(self) -> str:
        """Stream it reads."""
        return self.options.stream

    @property
    def explicit_ack(self) -> bool:
        """True for a durable consumer (events must be acknowledged)."""
        return self.durable is not None

    # ------------------------------------------------------------------ BaseConsumer API

    async def _connect(self) -> None:
        await self._open(resume=False)

    async def _open(self, *, resume: bool) -> None:
        """Connect, make sure the stream exists and bind the pull consumer."""

        async def on_reconnected() -> None:
            self.stats.reconnects += 1
            self._verify = True

        nc = await connect(self.options, who="consumer", reconnected_cb=on_reconnected)
        self._nc, self._js, self._sub = nc, nc.jetstream(), None
        try:
            await ensure_stream(self._js, self.options)
            await self._subscribe(resume=resume)
        except BaseException:
            await self._close_connection()
            raise

    async def _disconnect(self) -> None:
        """Give back what was fetched but not acknowledged, then close."""
        nc = self._nc
        if nc is not None and self.explicit_ack and nc.is_connected:
            unacked = sorted([*self._buffer, *self._handles.values()], key=lambda m: m.metadata.sequence.stream)
            for msg in unacked:  # in stream order, so they are delivered again in that order
                try:
                    await nc.publish(msg.reply, NAK)
                except Exception as exc:
                    logger.debug("streamll consumer: nak on stop failed: %s", exc)
                    break
        self._buffer.clear()
        self._handles.clear()
        await self._close_connection()

    async def _receive(self, timeout: float | None) -> Received[Msg] | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._buffer:
            remaining = FETCH_WAIT_MAX if deadline is None else deadline - time.monotonic()
            if remaining <= 0 and timeout != 0:
                return None
            if not self._started:
                return None
            await self._pull(min(max(remaining, 0.01), FETCH_WAIT_MAX))
            if timeout == 0:
                break
        if not self._buffer:
            return None
        msg = self._buffer.popleft()
        return Received(msg.data, msg)

    async def _ack_message(self, handle: Msg) -> None:
        # Through the current connection: a message fetched before a reconnect still acks.
        if self.explicit_ack:
            if self._nc is None:
                raise ConsumerError("not connected to NATS; the event will be delivered again after ack_wait")
            await self._nc.publish(handle.reply, ACK)

    async def consume_one(self, timeout: float | None = None) -> Event | None:
        """The next event that passes the filters (``None`` after ``timeout`` seconds); see BaseConsumer."""
        event = await super().consume_one(timeout)
        if event is not None and not self.explicit_ack:
            self._handles.pop(event.event_id, None)  # nothing to ack: keep no handle for a reader that never acks
        return event

    async def ack(self, event: Event) -> None:
        """Acknowledge ``event`` (durable consumers); a no-op for an ephemeral consumer, which needs no acks."""
        if self.explicit_ack:
            await super().ack(event)

    # ------------------------------------------------------------------ pulling

    async def _pull(self, wait: float) -> None:
        """One pull request of up to ``fetch_batch`` messages into the buffer (none after ``wait`` seconds)."""
        now = time.monotonic()
        # A pull on a consumer that no longer exists just times out, so check for it now and then:
        # after a pause longer than half the ephemeral inactive_threshold, and every VERIFY_EVERY idle seconds.
        if now - self._last_check > VERIFY_EVERY or (
            not self.explicit_ack and now - self._last_pull > self.inactive_threshold / 2
        ):
            self._verify = True
        nc = self._nc
        if (nc is None or nc.is_closed or self._verify or self._sub is None) and not await self._recover():
            await asyncio.sleep(min(wait, RECONNECT.delay(self._failures + 1)))
            return
        assert self._sub is not None
        try:
            msgs = await self._sub.fetch(self.fetch_batch, timeout=wait)
        except TimeoutError:  # nats.errors.TimeoutError included: nothing new
            self._last_pull = time.monotonic()
            return
        except (APIError, nats.errors.Error) as exc:
            # Connection closed, the consumer is gone (server restart, deletion) or JetStream is not ready.
            self._note_failure(exc)
            self._verify = True
            return
        self._failures = 0
        self._last_pull = self._last_check = time.monotonic()
        for msg in msgs:
            self._position = max(self._position, msg.metadata.sequence.stream)
        self._buffer.extend(msgs)

    async def _recover(self) -> bool:
        """Reconnect, or re-create a vanished consumer where this one stopped; False when not possible yet."""
        nc = self._nc
        try:
            if nc is None or nc.is_closed:
                await self._close_connection()
                await self._open(resume=True)
                self.stats.reconnects += 1
            elif nc.is_reconnecting or not nc.is_connected:
                return False
            else:
                assert self._js is not None
                try:
                    if self._consumer_name is None:
                        raise NotFoundError
                    await self._js.consumer_info(self.stream, self._consumer_name)
                    if self._sub is None:
                        await self._subscribe(resume=True)
                except NotFoundError:
                    logger.warning("streamll consumer: consumer %r is gone; re-creating it", self._consumer_name)
                    await ensure_stream(self._js, self.options)
                    await self._subscribe(resume=True)
        except ConfigurationError:
            raise
        except Exception as exc:
            self._note_failure(exc)
            return False
        self._verify = False
        self._failures = 0
        self._last_check = time.monotonic()
        return True

    def _note_failure(self, exc: BaseException) -> None:
        self._failures += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        if self._failures == 1:
            logger.warning("streamll consumer: pull failed (%s: %s); retrying", type(exc).__name__, exc)

    def _config(self, resume: bool) -> api.ConsumerConfig:
        if resume and self._position:
            deliver: dict[str, Any] = {
                "deliver_policy": api.DeliverPolicy.BY_START_SEQUENCE,
                "opt_start_seq": self._position + 1,
            }
        else:
            deliver = {"deliver_policy": api.DeliverPolicy.ALL if self.from_beginning else api.DeliverPolicy.NEW}
        if self.explicit_ack:
            return api.ConsumerConfig(
                durable_name=self.durable,
                name=self.durable,
                ack_policy=api.AckPolicy.EXPLICIT,
                ack_wait=self.ack_wait,
                filter_subject=self.subject,
                **deliver,
            )
        assert self._nc is not None
        return api.ConsumerConfig(
            name=self._nc._nuid.next().decode(),
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=self.inactive_threshold,
            filter_subject=self.subject,
            **deliver,
        )

    async def _subscribe(self, *, resume: bool) -> None:
        """Bind to the durable consumer (created if missing) or create an ephemeral one."""
        js = self._js
        assert js is not None
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception as exc:
                logger.debug("streamll consumer: unsubscribe failed: %s", exc)
            self._sub = None
        info: api.ConsumerInfo | None = None
        if self.durable is not None:
            try:
                info = await js.consumer_info(self.stream, self.durable)
            except NotFoundError:
                info = None
        if info is None:
            info = await js.add_consumer(self.stream, config=self._config(resume))
        elif info.config.filter_subject not in (None, "", self.subject):
            raise ConfigurationError(
                f"durable consumer {self.durable!r} on stream {self.stream!r} filters on "
                f"{info.config.filter_subject!r}, not {self.subject!r}; use another durable name"
            )
        if info.delivered is not None and info.delivered.stream_seq:
            self._position = max(self._position, info.delivered.stream_seq)
        self._consumer_name = info.name
        self._sub = await js.pull_subscribe_bind(consumer=info.name, stream=self.stream)

    async def _close_connection(self) -> None:
        nc, self._nc, self._js, self._sub = self._nc, None, None, None
        if nc is not None:
            await close_quietly(nc, flush=True)

    def __repr__(self) -> str:
        """The servers, subject and stream (no secrets), durable or ephemeral, and whether it is started."""
        mode = f"durable={self.durable!r}" if self.durable else "ephemeral"
        return f"<NatsStreamConsumer {self.options.display_url!r} {mode} started={self.is_started}>"


def _valid_name(name: str) -> bool:
    return bool(name) and not any(char in name for char in " .*>\t\r\n/\\")


__all__ = ["NatsStreamConsumer"]
