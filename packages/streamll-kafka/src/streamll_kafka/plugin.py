"""streamll hooks: ``kafka://`` and ``kafka+ssl://`` sinks and consumers.

The factories import aiokafka only when a Kafka URL is used, so loading the
plugin costs nothing for programs that stream elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streamll.hookspecs import ConsumerFactory, PluginCard, SinkFactory, hookimpl

from streamll_kafka.url import SCHEMES

if TYPE_CHECKING:
    from streamll_kafka.consumer import KafkaStreamConsumer
    from streamll_kafka.sink import KafkaSink


def make_sink(url: str) -> KafkaSink:
    """The sink a ``kafka://`` URL describes."""
    from streamll_kafka.sink import KafkaSink

    return KafkaSink.from_url(url)


def make_consumer(url: str, **options: Any) -> KafkaStreamConsumer:
    """The consumer a ``kafka://`` URL describes (keyword options as in ``KafkaStreamConsumer``)."""
    from streamll_kafka.consumer import KafkaStreamConsumer

    return KafkaStreamConsumer.from_url(url, **options)


@hookimpl
def streamll_plugin_card() -> PluginCard:
    """``pip install 'streamll[kafka]'``; its schemes; ``streamll.consumer.KafkaStreamConsumer``."""
    return PluginCard("kafka", SCHEMES, "streamll_kafka:KafkaStreamConsumer")


@hookimpl
def streamll_register_sinks(register: Callable[[str, SinkFactory], Any]) -> None:
    """``kafka://host:9092?topic=NAME`` and ``kafka+ssl://...``."""
    for scheme in SCHEMES:
        register(scheme, make_sink)


@hookimpl
def streamll_register_consumers(register: Callable[[str, ConsumerFactory], Any]) -> None:
    """``kafka://host:9092?topic=NAME&group=G`` and ``kafka+ssl://...``."""
    for scheme in SCHEMES:
        register(scheme, make_consumer)
