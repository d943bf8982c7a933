"""NatsStreamConsumer options: defaults, the URL's query, keywords that win over it, and what is refused."""

from __future__ import annotations

from typing import Any

import pytest
from streamll.errors import ConfigurationError
from streamll_nats import NatsStreamConsumer

pytestmark = pytest.mark.nats

URL_OPTIONS = "durable=d1&from_beginning=true&ack_wait=5s&fetch_batch=10&inactive_threshold=7s"


def settings(consumer: NatsStreamConsumer) -> tuple[Any, ...]:
    return (
        consumer.durable,
        consumer.from_beginning,
        consumer.ack_wait,
        consumer.fetch_batch,
        consumer.inactive_threshold,
        consumer.explicit_ack,
    )


def test_defaults() -> None:
    consumer = NatsStreamConsumer("nats://h")
    assert settings(consumer) == (None, False, 30.0, 100, 60.0, False)
    assert (consumer.subject, consumer.stream) == ("streamll.events", "STREAMLL")
    assert (consumer.event_types, consumer.execution_id) == (None, None)


def test_options_from_the_url() -> None:
    consumer = NatsStreamConsumer(f"nats://h?subject=a.b&stream=S&{URL_OPTIONS}")
    assert settings(consumer) == ("d1", True, 5.0, 10, 7.0, True)
    assert (consumer.subject, consumer.stream) == ("a.b", "S")


def test_keywords_win_over_the_url() -> None:
    consumer = NatsStreamConsumer(
        f"nats://h?subject=a.b&stream=S&{URL_OPTIONS}",
        subject="c.d",
        stream="T",
        durable="d2",
        from_beginning=False,
        ack_wait=0.5,
        fetch_batch=1,
        inactive_threshold=0.5,
        event_types="token",
        execution_id="run-1",
    )
    assert settings(consumer) == ("d2", False, 0.5, 1, 0.5, True)
    assert (consumer.subject, consumer.stream) == ("c.d", "T")
    assert (consumer.event_types, consumer.execution_id) == (frozenset({"token"}), "run-1")
    from_url = NatsStreamConsumer.from_url(f"nats://h?{URL_OPTIONS}", fetch_batch=3)
    assert settings(from_url) == ("d1", True, 5.0, 3, 7.0, True)


def test_per_execution_consumers_read_every_execution_subject() -> None:
    assert NatsStreamConsumer("nats://h?subject=a.b&per_execution=true").subject == "a.b.>"


@pytest.mark.parametrize("option", [{"ack_wait": 0}, {"fetch_batch": 0}, {"inactive_threshold": 0}])
def test_out_of_range_numbers_are_refused(option: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError, match="must be > 0 and fetch_batch >= 1"):
        NatsStreamConsumer("nats://h", **option)


@pytest.mark.parametrize("name", ["", "a.b", "a b", "a*", "a>", "a/b", "a\\b", "a\tb"])
def test_invalid_durable_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigurationError, match="is not a valid consumer name"):
        NatsStreamConsumer("nats://h", durable=name)


def test_valid_durable_names_are_kept() -> None:
    assert NatsStreamConsumer("nats://h", durable="EXPORT-X_1").durable == "EXPORT-X_1"


def test_group_and_durable_must_agree() -> None:
    assert NatsStreamConsumer("nats://h", group="g").durable == "g"
    assert NatsStreamConsumer("nats://h", group="g", durable="g").durable == "g"
    with pytest.raises(ConfigurationError, match="group='g' and durable='h' disagree"):
        NatsStreamConsumer("nats://h", group="g", durable="h")
    with pytest.raises(ConfigurationError, match="is not a valid consumer name"):
        NatsStreamConsumer("nats://h", group="a.b")


def test_repr_says_durable_or_ephemeral_and_hides_credentials() -> None:
    durable = NatsStreamConsumer("nats://alice:s3cret@h:4222?subject=a.b&stream=S", durable="w")
    assert repr(durable).startswith("<NatsStreamConsumer 'nats://alice:***@h:4222")
    assert repr(durable).endswith(" durable='w' started=False>") and "s3cret" not in repr(durable)
    assert repr(NatsStreamConsumer("nats://h")).endswith(" ephemeral started=False>")
