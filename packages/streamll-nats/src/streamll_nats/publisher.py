"""JetStream publishing with many acknowledgements outstanding at once.

Each message is published with its own reply subject under one inbox
subscription; the reply is JetStream's ack (or its error) and resolves that
message's future. This is what ``JetStreamContext.publish_async`` does, with
one difference that matters here: a publish JetStream refuses resolves its
future with the :class:`~nats.js.errors.APIError` at once (nats-py 2.16's
``publish_async`` leaves such a future pending forever), so a refused batch
is retried without first waiting out a timeout.
"""

from __future__ import annotations

import asyncio
import json

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import PubAck
from nats.js.errors import APIError, NoStreamResponseError

NO_RESPONDERS = "503"
STATUS_HEADER = "Status"


class AckPublisher:
    """Publishes to JetStream and returns a future per message for its ack."""

    def __init__(self, nc: Client) -> None:
        """Acks come back on a fresh inbox of ``nc``; nothing is subscribed until :meth:`start`."""
        self._nc = nc
        self._prefix = nc.new_inbox()
        self._cut = len(self._prefix) + 1
        self._pending: dict[str, asyncio.Future[PubAck]] = {}
        self._counter = 0
        self._sub: Subscription | None = None

    @property
    def pending(self) -> int:
        """Publishes still waiting for their ack."""
        return len(self._pending)

    async def start(self) -> None:
        """Subscribe to the reply inbox (before the first publish)."""
        self._sub = await self._nc.subscribe(self._prefix + ".*", cb=self._on_reply)

    async def publish(self, subject: str, body: bytes, headers: dict[str, str]) -> asyncio.Future[PubAck]:
        """Send one message; the returned future resolves to its :class:`PubAck` or JetStream's error."""
        self._counter += 1
        token = format(self._counter, "x")
        future: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        try:
            await self._nc.publish(subject, body, reply=f"{self._prefix}.{token}", headers=headers)
        except BaseException:
            self._pending.pop(token, None)
            raise
        return future

    def fail_all(self, exc: BaseException) -> None:
        """Fail every outstanding publish (the connection is gone; their acks will not come)."""
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(exc)

    def forget(self) -> None:
        """Drop outstanding futures that nobody waits for any more (cancelled batch)."""
        pending, self._pending = self._pending, {}
        for future in pending.values():
            future.cancel()

    async def _on_reply(self, msg: Msg) -> None:
        future = self._pending.pop(msg.subject[self._cut :], None)
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get(STATUS_HEADER) == NO_RESPONDERS:
            future.set_exception(NoStreamResponseError())
            return
        try:
            reply = json.loads(msg.data)
            error = reply.get("error")
            if error:
                future.set_exception(
                    APIError(
                        code=error.get("code"), err_code=error.get("err_code"), description=error.get("description")
                    )
                )
            else:
                future.set_result(PubAck.from_response(reply))
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            future.set_exception(APIError(description=f"unreadable JetStream ack: {exc}"))


__all__ = ["AckPublisher"]
