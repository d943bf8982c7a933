"""Every streamll 0.1 name: it works (or names its replacement) and warns saying what to write instead."""

from __future__ import annotations

import asyncio
import importlib
import io
import os
import re
import sys

import pytest
import streamll
from streamll.core.events import EndEvent, StartEvent, TokenEvent
from streamll.errors import ConfigurationError

from tests.helpers import ABSENT_PLUGINS_ENV, ALLOWED_IN_CI

redis_plugin = pytest.mark.skipif(
    importlib.util.find_spec("streamll_redis") is None,
    reason=(ALLOWED_IN_CI if "redis" in os.environ.get(ABSENT_PLUGINS_ENV, "").split(",") else "")
    + "the redis plugin is not installed",
)
INSTEAD = "write `from streamll_redis import RedisSink; RedisSink('redis://localhost:6379/0', stream='KEY')`"


@redis_plugin
def test_streamll_sinks_redissink_warns_and_keeps_the_0_1_signature_and_defaults() -> None:
    from streamll_redis import RedisSink as CurrentRedisSink

    with pytest.warns(DeprecationWarning, match=re.escape(INSTEAD)):
        from streamll.sinks import RedisSink
    assert issubclass(RedisSink, CurrentRedisSink)
    sink = RedisSink(redis_url="redis://localhost:6379", stream_key="ml_events")
    assert (sink.stream, sink.stream_key, sink.legacy_layout) == ("ml_events", "ml_events", True)
    assert RedisSink().stream == "streamll_events"  # 0.1's default stream
    assert RedisSink("redis://h:6379/2?stream=s").options.db == 2
    assert RedisSink("redis://h:6379/2?stream=s").stream == "s"
    assert RedisSink(redis_url="redis://h:6379", db=3, password="pw").options.db == 3


@redis_plugin
def test_redissink_0_1_broker_kwargs_it_cannot_honour_say_to_use_the_url() -> None:
    with pytest.warns(DeprecationWarning):
        from streamll.sinks import RedisSink
    with pytest.raises(ConfigurationError, match="put connection options in the URL"):
        RedisSink(redis_url="redis://localhost:6379", graceful_timeout=3)


@redis_plugin
def test_the_0_1_module_path_streamll_sinks_redis_warns_too() -> None:
    with pytest.warns(DeprecationWarning, match=re.escape(INSTEAD)):
        from streamll.sinks.redis import RedisSink
    assert RedisSink.__name__ == "LegacyRedisSink"


@redis_plugin
def test_top_level_redissink_warns_too() -> None:
    with pytest.warns(DeprecationWarning, match=re.escape(INSTEAD)):
        sink_class = streamll.RedisSink
    assert sink_class.__name__ == "LegacyRedisSink"


def test_redissink_without_the_plugin_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "streamll_redis.legacy", None)  # as if streamll-redis were not installed
    with pytest.warns(DeprecationWarning), pytest.raises(ImportError, match=re.escape("pip install 'streamll[redis]'")):
        from streamll.sinks import RedisSink  # noqa: F401


def test_rabbitmqsink_is_gone_and_the_error_names_the_replacement() -> None:
    with pytest.raises(ImportError, match=r"RabbitMQSink was removed.*use Redis, NATS or Kafka"):
        from streamll.sinks import RabbitMQSink
    with pytest.raises(ImportError, match="RabbitMQSink was removed"):
        streamll.RabbitMQSink  # noqa: B018
    with pytest.raises(ImportError, match="RabbitMQSink was removed"):
        from streamll.sinks.rabbitmq import RabbitMQSink  # noqa: F401


def test_streamll_models_event_warns_and_is_the_current_event() -> None:
    with pytest.warns(DeprecationWarning, match=re.escape("write `from streamll import Event`")):
        from streamll.models import Event
    assert Event is streamll.Event
    event = Event(execution_id="e1", event_type="custom", data={"k": 1})  # 0.1's way of building one
    assert event.execution_id == "e1" and event.data == {"k": 1}
    with pytest.warns(DeprecationWarning, match="new_event_id"):
        from streamll.models import generate_event_id
    assert re.fullmatch(r"[0-9a-f]{32}", generate_event_id())


def test_event_consumer_module_path_of_0_1_still_works() -> None:
    from streamll.event_consumer import EventConsumer

    assert EventConsumer is streamll.EventConsumer


def test_terminalsink_output_warns_and_writes_there_and_show_tokens_false_hides_tokens() -> None:
    buffer = io.StringIO()
    with pytest.warns(DeprecationWarning, match=re.escape("write TerminalSink(stream=...)")):
        sink = streamll.TerminalSink(show_tokens=False, output=buffer)
    assert sink.output is buffer
    sink.handle_event(TokenEvent(token="secret", field="answer"))
    sink.handle_event(StartEvent(module_name="QA", operation="module"))
    assert buffer.getvalue() == "[START] module QA\n"
    positional = streamll.TerminalSink(False)  # 0.1: TerminalSink(show_tokens, output)
    assert positional.show_tokens is False and positional.stream is sys.stdout


@redis_plugin
def test_event_consumer_0_1_names_app_broker_subscriber_and_llm_types() -> None:
    consumer = streamll.EventConsumer("redis://127.0.0.1:6379", target="ml_events")
    seen: list[object] = []
    assert consumer.consumer.stream == "ml_events"
    with pytest.warns(DeprecationWarning, match=re.escape("write `await consumer.run()`")):
        assert consumer.app is consumer
    with pytest.raises(ConfigurationError, match=re.escape("use consumer.consumer")):
        consumer.broker  # noqa: B018
    with pytest.raises(ConfigurationError, match=re.escape("@consumer.on")):
        consumer.subscriber(stream="x")
    with pytest.warns(DeprecationWarning, match='write @consumer.on\\("start"\\) and check event.operation == "lm"'):

        @consumer.on("llm_start")
        def lm_started(event: object) -> None:
            seen.append(event)

    with pytest.warns(DeprecationWarning, match='write @consumer.on\\("end"\\)'):
        consumer.on("llm_end")(lambda event: seen.append(event))
    lm_start = StartEvent(operation="lm", module_name="openai/x")
    asyncio.run(consumer.handle(StartEvent(operation="module", module_name="QA")))
    asyncio.run(consumer.handle(lm_start))
    lm_end = EndEvent(operation="lm")
    asyncio.run(consumer.handle(lm_end))
    asyncio.run(consumer.handle(EndEvent(operation="module")))
    assert seen == [lm_start, lm_end]


@redis_plugin
def test_event_consumer_reads_url_and_target_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMLL_BROKER_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("STREAMLL_TARGET", "from_env")
    consumer = streamll.EventConsumer()
    assert consumer.broker_url == "redis://127.0.0.1:6379/0" and consumer.consumer.stream == "from_env"


def test_event_consumer_on_rabbitmq_names_the_supported_transports() -> None:
    with pytest.raises(ConfigurationError, match="use Redis, NATS or Kafka"):
        streamll.EventConsumer("amqp://guest:guest@localhost:5672/", target="streamll_events")


def test_event_consumer_without_a_url_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMLL_BROKER_URL", raising=False)
    with pytest.raises(ConfigurationError, match=r"needs a broker URL.*STREAMLL_BROKER_URL"):
        streamll.EventConsumer()


@redis_plugin
def test_event_consumer_handlers_see_context_ids_in_data_where_0_1_put_them() -> None:
    consumer = streamll.EventConsumer("redis://127.0.0.1:6379", target="t")
    seen: list[dict[str, object]] = []
    consumer.on("token")(lambda event: seen.append(dict(event.data)))
    event = TokenEvent(token="a", field="answer", tags={"conversation_id": "conv_123", "token": "not this"})
    asyncio.run(consumer.handle(event))
    assert seen[0]["conversation_id"] == "conv_123" and seen[0]["token"] == "a"
