"""NATS JetStream transport for streamll: a sink (``nats://`` / ``tls://`` URLs) and a consumer.

::

    streamll.configure(sinks=["nats://127.0.0.1:4222?subject=streamll.events&stream=STREAMLL"])

    from streamll.consumer import NatsStreamConsumer
    async with NatsStreamConsumer("nats://127.0.0.1:4222", durable="worker") as consumer:
        async for event in consumer:
            ...
            await consumer.ack(event)
"""

from streamll_nats.consumer import NatsStreamConsumer
from streamll_nats.sink import MSG_ID_HEADER, NatsSink, PublishError, message_headers
from streamll_nats.url import DEFAULT_STREAM, DEFAULT_SUBJECT, NatsOptions, StreamSettings, parse_url

__version__ = "0.2.0"

__all__ = [
    "DEFAULT_STREAM",
    "DEFAULT_SUBJECT",
    "MSG_ID_HEADER",
    "NatsOptions",
    "NatsSink",
    "NatsStreamConsumer",
    "PublishError",
    "StreamSettings",
    "__version__",
    "message_headers",
    "parse_url",
]
