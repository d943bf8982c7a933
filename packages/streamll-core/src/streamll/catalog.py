"""The first-party transport plugins, for hints when one is not installed.

An installed plugin describes itself (``streamll_plugin_card``); one that is not installed
cannot, yet ``redis://`` (or 0.1's ``streamll.RedisSink``) must still say ``pip install 'streamll[redis]'``. So the
catalogue of the extras the ``streamll`` distribution offers ships with core, as data
used only when no installed plugin serves the scheme or name. A test checks it
against the cards the plugins in this repository declare, so the two cannot drift.
"""

from __future__ import annotations

from streamll.hookspecs import OldName, PluginCard

FIRST_PARTY: dict[str, PluginCard] = {
    "redis": PluginCard(
        "redis",
        ("redis", "rediss", "unix"),
        "streamll_redis:RedisStreamConsumer",
        (
            OldName(
                "RedisSink",
                "streamll_redis.legacy:LegacyRedisSink",
                "from streamll_redis import RedisSink; RedisSink('redis://localhost:6379/0', stream='KEY')",
            ),
        ),
    ),
    "nats": PluginCard("nats", ("nats", "tls"), "streamll_nats:NatsStreamConsumer"),
    "kafka": PluginCard("kafka", ("kafka", "kafka+ssl"), "streamll_kafka:KafkaStreamConsumer"),
}
"""Entry-point name -> card of the plugins ``pip install 'streamll[EXTRA]'`` provides."""

__all__ = ["FIRST_PARTY"]
