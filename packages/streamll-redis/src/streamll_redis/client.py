"""Building ``redis.asyncio`` clients from :class:`~streamll_redis.url.RedisOptions`."""

from __future__ import annotations

import contextlib

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streamll_redis.url import RedisOptions

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
"""Errors that mean "the server is unreachable right now": reconnect and retry."""


def make_client(options: RedisOptions) -> aioredis.Redis:
    """A client that raises on the first connection error instead of retrying by itself.

    streamll owns the retry policy (backoff, counters); a client that retried
    silently would hide outages from ``stats``.
    """
    return aioredis.Redis(**options.client_kwargs(), retry=Retry(NoBackoff(), 0), decode_responses=False)


async def close_client(client: aioredis.Redis | None) -> None:
    """Close ``client`` and its connections, ignoring errors from an already broken connection."""
    if client is None:
        return
    with contextlib.suppress(Exception):
        await client.aclose()


__all__ = ["CONNECTION_ERRORS", "close_client", "make_client"]
