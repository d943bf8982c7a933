"""Redis Streams for streamll: :class:`RedisSink` writes events, :class:`RedisStreamConsumer` reads them back.

Installed, it serves ``redis://``, ``rediss://`` and ``unix://`` sink URLs::

    streamll.configure(sinks=["redis://localhost:6379/0?stream=streamll"])
"""

from streamll_redis.consumer import RedisStreamConsumer
from streamll_redis.entries import DATA_FIELD, EVENT_TYPE_FIELD, EXECUTION_ID_FIELD
from streamll_redis.sink import RedisSink
from streamll_redis.url import DEFAULT_MAXLEN, DEFAULT_STREAM, RedisOptions, mask_url, parse_redis_url

__version__ = "0.2.0"

__all__ = [
    "DATA_FIELD",
    "DEFAULT_MAXLEN",
    "DEFAULT_STREAM",
    "EVENT_TYPE_FIELD",
    "EXECUTION_ID_FIELD",
    "RedisOptions",
    "RedisSink",
    "RedisStreamConsumer",
    "__version__",
    "mask_url",
    "parse_redis_url",
]
