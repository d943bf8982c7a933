"""KafkaSink and KafkaStreamConsumer options: the URL's, keywords that win over it, names and reprs."""

from __future__ import annotations

import pytest
from streamll_kafka import KafkaSink, KafkaStreamConsumer

pytestmark = pytest.mark.kafka


def test_consumer_options_come_from_the_url() -> None:
    consumer = KafkaStreamConsumer("kafka://h:9092?topic=t&group=g&from_beginning=true")
    assert (consumer.topic, consumer.group, consumer.from_beginning) == ("t", "g", True)
    plain = KafkaStreamConsumer("kafka://h:9092?topic=t")
    assert (plain.group, plain.from_beginning, plain.event_types, plain.execution_id) == (None, False, None, None)


def test_consumer_keywords_win_over_the_url() -> None:
    consumer = KafkaStreamConsumer(
        "kafka://h:9092?topic=t&group=g&from_beginning=true",
        topic="u",
        group="h",
        from_beginning=False,
        event_types=["token"],
        execution_id="run-1",
    )
    assert (consumer.topic, consumer.group, consumer.from_beginning) == ("u", "h", False)
    assert (consumer.event_types, consumer.execution_id) == (frozenset({"token"}), "run-1")
    from_url = KafkaStreamConsumer.from_url("kafka://h:9092?topic=t", group="g2")
    assert (from_url.topic, from_url.group) == ("t", "g2")


def test_consumer_repr_hides_credentials() -> None:
    consumer = KafkaStreamConsumer("kafka://u:hunter2@h:9092?topic=t", group="g")
    assert repr(consumer) == "<KafkaStreamConsumer kafka://u:***@h:9092?topic=t group='g' started=False>"
    assert repr(KafkaStreamConsumer("kafka://h:9092?topic=t")) == (
        "<KafkaStreamConsumer kafka://h:9092?topic=t started=False>"
    )


def test_sink_topic_keyword_name_and_repr() -> None:
    sink = KafkaSink("kafka://a:9092,b:9093?topic=t", topic="u")
    assert (sink.topic, sink.name) == ("u", "kafka:u@a:9092,b:9093")
    assert KafkaSink.from_url("kafka://a:9092?topic=t").topic == "t"
    assert repr(KafkaSink("kafka://u:hunter2@a:9092?topic=t")) == (
        "<KafkaSink 'kafka:t@a:9092' kafka://u:***@a:9092?topic=t running=False>"
    )


async def test_sending_before_open_is_refused() -> None:
    with pytest.raises(RuntimeError, match=r"^KafkaSink.send_batch called before open\(\)$"):
        await KafkaSink("kafka://a:9092?topic=t").send_batch([])
