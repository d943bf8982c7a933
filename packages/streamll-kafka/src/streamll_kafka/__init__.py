"""streamll-kafka: stream streamll events to Kafka and read them back.

``streamll.configure(sinks=["kafka://localhost:9092?topic=streamll"])`` once
this distribution is installed; read with ``KafkaStreamConsumer`` (also
importable as ``streamll.consumer.KafkaStreamConsumer``). The sink and
consumer classes load aiokafka on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from streamll_kafka.url import KafkaOptions, mask_url, parse_kafka_url

if TYPE_CHECKING:
    from streamll_kafka.consumer import KafkaHandle, KafkaStreamConsumer
    from streamll_kafka.sink import KafkaDeliveryError, KafkaSink

__version__ = "0.2.0"

_LAZY = {
    "KafkaSink": "streamll_kafka.sink",
    "KafkaDeliveryError": "streamll_kafka.sink",
    "KafkaStreamConsumer": "streamll_kafka.consumer",
    "KafkaHandle": "streamll_kafka.consumer",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "KafkaDeliveryError",
    "KafkaHandle",
    "KafkaOptions",
    "KafkaSink",
    "KafkaStreamConsumer",
    "__version__",
    "mask_url",
    "parse_kafka_url",
]
