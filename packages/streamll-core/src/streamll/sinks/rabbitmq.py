"""0.1 module path of the RabbitMQ sink, which streamll 0.2 no longer has: importing it says what to use."""

from streamll.deprecation import REMOVED

raise ImportError(REMOVED["RabbitMQSink"], name="RabbitMQSink")
