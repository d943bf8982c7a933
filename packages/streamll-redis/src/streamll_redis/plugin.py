"""streamll plugin hooks: Redis sinks and consumers for ``redis://``, ``rediss://`` and ``unix://`` URLs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamll.hookspecs import ConsumerFactory, ExecutionLogFactory, OldName, PluginCard, SinkFactory, hookimpl

from streamll_redis.consumer import RedisStreamConsumer
from streamll_redis.executions import RedisExecutionLog
from streamll_redis.sink import RedisSink
from streamll_redis.url import SCHEMES

OLD_NAMES = (
    OldName(
        "RedisSink",
        "streamll_redis.legacy:LegacyRedisSink",
        "from streamll_redis import RedisSink; RedisSink('redis://localhost:6379/0', stream='KEY')",
    ),
)
"""0.1's ``streamll.RedisSink`` (also ``streamll.sinks.RedisSink``): the sink that still writes 0.1's layout."""


@hookimpl
def streamll_plugin_card() -> PluginCard:
    """``pip install 'streamll[redis]'``; its schemes; ``streamll.consumer.RedisStreamConsumer``; 0.1's RedisSink."""
    return PluginCard("redis", SCHEMES, "streamll_redis:RedisStreamConsumer", OLD_NAMES)


@hookimpl
def streamll_register_sinks(register: Callable[[str, SinkFactory], Any]) -> None:
    """:class:`RedisSink` for every Redis scheme."""
    for scheme in SCHEMES:
        register(scheme, RedisSink.from_url)


@hookimpl
def streamll_register_consumers(register: Callable[[str, ConsumerFactory], Any]) -> None:
    """:class:`RedisStreamConsumer` for every Redis scheme."""
    for scheme in SCHEMES:
        register(scheme, RedisStreamConsumer.from_url)


@hookimpl
def streamll_register_execution_logs(register: Callable[[str, ExecutionLogFactory], Any]) -> None:
    """:class:`RedisExecutionLog` (the web relay's per-execution reader) for every Redis scheme."""
    for scheme in SCHEMES:
        register(scheme, RedisExecutionLog.from_url)
