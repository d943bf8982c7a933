"""Connecting to NATS and making sure the JetStream stream is there, shared by sink and consumer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError
from streamll.errors import ConfigurationError

from streamll_nats.url import NatsOptions, subject_matches

logger = logging.getLogger("streamll")

ERR_STREAM_NAME_IN_USE = 10058
ERR_SUBJECTS_OVERLAP = 10065

_RETENTION = {
    "limits": api.RetentionPolicy.LIMITS,
    "interest": api.RetentionPolicy.INTEREST,
    "workqueue": api.RetentionPolicy.WORK_QUEUE,
}
_STORAGE = {"file": api.StorageType.FILE, "memory": api.StorageType.MEMORY}


def log_errors(who: str) -> Callable[[Exception], Awaitable[None]]:
    """An ``error_cb`` that logs the client's errors at debug level (they show up as failed publishes or fetches)."""

    async def on_error(exc: Exception) -> None:
        logger.debug("streamll %s: NATS client error: %s: %s", who, type(exc).__name__, exc)

    return on_error


async def connect(options: NatsOptions, *, who: str, **callbacks: Any) -> Client:
    """A connected client, or an error after one quick round over the servers.

    nats-py's own reconnection is kept to one immediate retry per server (its
    initial connect would otherwise block for ``max_reconnect_attempts`` x
    ``reconnect_time_wait``); the sink and the consumer reconnect with backoff
    themselves, so an outage is counted and nothing waits on a dead socket.
    Client errors are logged under ``who`` unless ``callbacks`` has an ``error_cb``.
    """
    kwargs = options.connect_kwargs()
    kwargs.update(max_reconnect_attempts=1, reconnect_time_wait=0, error_cb=log_errors(who))
    kwargs.update(callbacks)
    seen: list[Exception] = []
    report = kwargs["error_cb"]

    async def remember(exc: Exception) -> None:
        seen.append(exc)
        await report(exc)

    kwargs["error_cb"] = remember
    try:
        return await nats.connect(**kwargs)
    except nats.errors.NoServersError as exc:
        # "no servers available" hides why: raise what the server said ('Authorization Violation')
        # or what the socket said (connection refused), as the sink, which does not retry, does.
        if seen:
            # what the server said wins over what the socket said after it (a reset once it hung up)
            said = [error for error in seen if isinstance(error, nats.errors.Error)]
            raise (said or seen)[-1] from exc
        raise


async def close_quietly(nc: Client, *, flush: bool = False, timeout: float = 5.0) -> None:
    """Close ``nc``, logging instead of raising: the caller is stopping, or already failing for a better reason.

    With ``flush``, first wait (up to 2 s) until the server has what was sent
    (acks and naks), so it does not redeliver those messages.
    """
    try:
        if flush and nc.is_connected:
            await nc.flush(timeout=2)
        await asyncio.wait_for(nc.close(), timeout)
    except Exception as exc:
        logger.debug("streamll: closing a NATS connection raised %r", exc)


def stream_config(options: NatsOptions) -> api.StreamConfig:
    """The configuration a missing stream is created with."""
    settings = options.stream_settings
    return api.StreamConfig(
        name=options.stream,
        subjects=options.stream_subjects,
        retention=_RETENTION[settings.retention],
        storage=_STORAGE[settings.storage],
        max_age=settings.max_age,
        max_msgs=settings.max_msgs,
        max_bytes=settings.max_bytes,
        num_replicas=settings.replicas,
        duplicate_window=settings.duplicate_window,
    )


def _check_covers(info: api.StreamInfo, options: NatsOptions) -> None:
    subjects = list(info.config.subjects or [])
    wanted = options.publish_subject("x") if options.per_execution else options.subject
    if not any(subject_matches(pattern, wanted) for pattern in subjects):
        raise ConfigurationError(
            f"stream {options.stream!r} exists but its subjects {subjects} do not include subject "
            f"{wanted!r}; add the subject to the stream, choose another ?stream=, or publish to one of them"
        )


async def ensure_stream(js: JetStreamContext, options: NatsOptions) -> api.StreamInfo:
    """The stream named in ``options``: used as it is when it exists, created when missing.

    An existing stream keeps its own configuration; it only has to capture the
    subject. Raises :class:`~streamll.errors.ConfigurationError` when it does
    not, when another stream already captures the subject, or when the stream
    is missing and ``create=false``.
    """
    try:
        info = await js.stream_info(options.stream)
    except NotFoundError:
        if not options.stream_settings.create:
            raise ConfigurationError(
                f"stream {options.stream!r} does not exist and create=false; create it or drop create=false"
            ) from None
        try:
            info = await js.add_stream(stream_config(options))
            logger.info(
                "streamll: created JetStream stream %r for subjects %s", options.stream, options.stream_subjects
            )
            return info
        except APIError as exc:
            if exc.err_code == ERR_SUBJECTS_OVERLAP:
                owner = await _owner_of(js, options.subject)
                raise ConfigurationError(
                    f"cannot create stream {options.stream!r}: subject {options.subject!r} is already captured by "
                    f"stream {owner!r}; use ?stream={owner} or another subject"
                ) from None
            if exc.err_code != ERR_STREAM_NAME_IN_USE:
                raise
            info = await js.stream_info(options.stream)  # created concurrently by another client
    _check_covers(info, options)
    return info


async def _owner_of(js: JetStreamContext, subject: str) -> str:
    try:
        return await js.find_stream_name_by_subject(subject)
    except Exception:
        return "another stream"


__all__ = ["close_quietly", "connect", "ensure_stream", "log_errors", "stream_config"]
