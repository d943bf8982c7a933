"""Redis URLs: options, defaults, errors, credentials from the environment, and masking."""

from __future__ import annotations

import logging

import pytest
import streamll
from streamll.errors import ConfigurationError
from streamll.plugins import create_consumer, create_sink, list_plugins
from streamll.sinks.base import Overflow
from streamll_redis import RedisSink, RedisStreamConsumer, mask_url, parse_redis_url
from streamll_redis.url import DEFAULT_MAXLEN

pytestmark = pytest.mark.redis

SECRET = "s3cr3t-Pa55"


@pytest.fixture(autouse=True)
def no_password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMLL_REDIS_PASSWORD", raising=False)
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)


def test_defaults() -> None:
    options = parse_redis_url("redis://localhost")
    assert (options.scheme, options.host, options.port, options.db) == ("redis", "localhost", 6379, 0)
    assert options.stream == "streamll"
    assert options.maxlen == DEFAULT_MAXLEN and options.approximate is True
    assert options.username is None and options.password is None and options.password_source is None
    assert not options.tls


def test_full_url() -> None:
    options = parse_redis_url(
        "redis://app:p%40ss%2Fw0rd@127.0.0.1:6380/2?stream=events&maxlen=500&approximate=false"
        "&socket_timeout=2.5&client_name=svc"
    )
    assert (options.host, options.port, options.db) == ("127.0.0.1", 6380, 2)
    assert (options.username, options.password, options.password_source) == ("app", "p@ss/w0rd", "url")
    assert (options.stream, options.maxlen, options.approximate) == ("events", 500, False)
    kwargs = options.client_kwargs()
    assert kwargs["host"] == "127.0.0.1" and kwargs["port"] == 6380 and kwargs["db"] == 2
    assert kwargs["socket_timeout"] == 2.5 and kwargs["client_name"] == "svc"
    assert "ssl" not in kwargs


def test_db_as_query_and_maxlen_zero_turns_trimming_off() -> None:
    options = parse_redis_url("redis://h?db=4&maxlen=0")
    assert options.db == 4 and options.maxlen == 0


def test_rediss_tls_options() -> None:
    options = parse_redis_url(
        "rediss://h:6390/0?ssl_ca_certs=/etc/ca.pem&ssl_certfile=/etc/c.pem&ssl_keyfile=/etc/c.key&ssl_cert_reqs=required"
    )
    assert options.tls
    kwargs = options.client_kwargs()
    assert kwargs["ssl"] is True
    assert (kwargs["ssl_ca_certs"], kwargs["ssl_certfile"], kwargs["ssl_keyfile"]) == (
        "/etc/ca.pem",
        "/etc/c.pem",
        "/etc/c.key",
    )
    assert kwargs["ssl_cert_reqs"] == "required" and kwargs["ssl_check_hostname"] is True


def test_rediss_without_verification_does_not_check_the_host_name() -> None:
    kwargs = parse_redis_url("rediss://h?ssl_cert_reqs=none").client_kwargs()
    assert kwargs["ssl_cert_reqs"] == "none" and kwargs["ssl_check_hostname"] is False


def test_unix_socket_url() -> None:
    options = parse_redis_url("unix:///var/run/redis.sock?db=3&stream=s")
    assert options.unix_socket_path == "/var/run/redis.sock" and options.db == 3 and options.stream == "s"
    kwargs = options.client_kwargs()
    assert kwargs["unix_socket_path"] == "/var/run/redis.sock" and "host" not in kwargs


def test_sink_options_in_the_url() -> None:
    sink = RedisSink("redis://h/0?stream=s&buffer_size=50&batch_size=7&linger=0&overflow=drop_newest&block_timeout=3")
    assert (sink.buffer_size, sink.batch_size, sink.linger) == (50, 7, 0.0)
    assert sink.overflow is Overflow.DROP_NEWEST and sink.block_timeout == 3.0
    assert sink.stream == "s"


def test_keyword_arguments_win_over_the_url() -> None:
    sink = RedisSink("redis://h/0?stream=a&maxlen=10&batch_size=3", stream="b", maxlen=0, batch_size=9)
    assert (sink.stream, sink.maxlen, sink.batch_size) == ("b", 0, 9)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://h:6379", "must start with"),
        ("localhost:6379", "expected a Redis URL"),
        ("redis://h:port", "invalid port"),
        ("redis://h/zero", "expected an integer"),
        ("redis://h/1?db=2", "either in the path"),
        ("redis://h?stream=", "is empty"),
        ("redis://h?maxlen=-1", "must be >= 0"),
        ("redis://h?maxlen=lots", "expected an integer"),
        ("redis://h?approximate=perhaps", "expected one of"),
        ("redis://h?socket_timeout=soon", "number of seconds"),
        ("redis://h?bogus=1", "unknown redis URL option 'bogus'"),
        ("redis://h?stream=a&stream=b", "given twice"),
        ("redis://h?ssl_ca_certs=/ca.pem", "needs a rediss://"),
        ("rediss://h?ssl_cert_reqs=maybe", "expected one of none, optional, required"),
        ("redis://h?password=x", "put credentials in the URL"),
        ("unix://", "socket path"),
        ("redis://h/0#part", "'#' part"),
        ("redis://h?buffer_size=0", "must be >= 1"),
    ],
)
def test_bad_urls_raise_configuration_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_redis_url(url)


def test_bad_sink_options_raise_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="unknown overflow policy"):
        RedisSink("redis://h?overflow=explode")


def test_consumer_name_needs_a_group() -> None:
    with pytest.raises(ConfigurationError, match="group"):
        RedisStreamConsumer("redis://h", consumer="worker-1")
    with pytest.raises(ConfigurationError, match="count"):
        RedisStreamConsumer("redis://h", count=0)


@pytest.mark.parametrize("ack_timeout", [0, -1, 0.0])
def test_consumer_ack_timeout_must_be_positive(ack_timeout: float) -> None:
    with pytest.raises(ConfigurationError, match=r"ack_timeout must be a number of seconds > 0"):
        RedisStreamConsumer("redis://h", group="g", ack_timeout=ack_timeout)


def test_consumer_takes_a_small_ack_timeout_and_the_smallest_count() -> None:
    consumer = RedisStreamConsumer("redis://h", group="g", ack_timeout=0.5, count=1)
    assert (consumer.ack_timeout, consumer.count) == (0.5, 1)
    assert RedisStreamConsumer("redis://h").ack_timeout == 5.0


def test_consumer_options_from_the_url() -> None:
    consumer = RedisStreamConsumer("redis://h/0?stream=s&group=g&consumer=c1&from_beginning=1&count=10")
    assert (consumer.stream, consumer.group, consumer.consumer, consumer.from_beginning, consumer.count) == (
        "s",
        "g",
        "c1",
        True,
        10,
    )
    assert RedisStreamConsumer("redis://h").stream == "streamll"


# ---------------------------------------------------------------- credentials


def test_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", "from-redis-env")
    assert parse_redis_url("redis://h").password_source == "REDIS_PASSWORD"
    monkeypatch.setenv("STREAMLL_REDIS_PASSWORD", SECRET)
    options = parse_redis_url("redis://h")
    assert options.password == SECRET and options.password_source == "STREAMLL_REDIS_PASSWORD"
    assert parse_redis_url("redis://user@h").username == "user"
    assert parse_redis_url("redis://user@h").password == SECRET


def test_password_in_the_url_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMLL_REDIS_PASSWORD", "from-env")
    options = parse_redis_url("redis://:in-url@h")
    assert options.password == "in-url" and options.password_source == "url" and options.username is None


def test_password_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"redis://app:{SECRET}@127.0.0.1:6379/0?stream=s"
    options = parse_redis_url(url)
    sink = RedisSink(url)
    consumer = RedisStreamConsumer(url, group="g")
    shown = [repr(options), str(options), options.display_url, repr(sink), sink.name, repr(consumer)]
    for text in shown:
        assert SECRET not in text
    assert options.display_url == "redis://app:***@127.0.0.1:6379/0?stream=s"

    monkeypatch.setenv("STREAMLL_REDIS_PASSWORD", SECRET)
    env_options = parse_redis_url("redis://127.0.0.1")
    assert SECRET not in repr(env_options) and SECRET not in env_options.display_url


@pytest.mark.parametrize(
    "url",
    [
        f"redis://app:{SECRET}@h:port",
        f"redis://app:{SECRET}@h/notadb",
        f"redis://:{SECRET}@h?bogus=1",
        f"http://app:{SECRET}@h",
        f"redis://app:{SECRET}/with/slash@h",
    ],
)
def test_errors_do_not_leak_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_redis_url(url)
    assert SECRET not in str(info.value)


def test_mask_url() -> None:
    assert mask_url(f"redis://u:{SECRET}@h:1/0") == "redis://u:***@h:1/0"
    assert mask_url(f"rediss://:{SECRET}@h") == "rediss://:***@h"
    assert mask_url("redis://u@h") == "redis://u@h"
    assert mask_url("redis://h:6379/0") == "redis://h:6379/0"
    assert mask_url("not a url") == "not a url"


# ---------------------------------------------------------------- plugin registration


def test_schemes_are_registered_through_the_plugin_hook() -> None:
    info = {plugin.name: plugin for plugin in list_plugins()}["redis"]
    assert info.error is None
    assert set(info.sink_schemes) == {"redis", "rediss", "unix"}
    assert set(info.consumer_schemes) == {"redis", "rediss", "unix"}
    assert isinstance(create_sink("redis://127.0.0.1:6379/0?stream=x"), RedisSink)
    assert isinstance(create_sink("rediss://127.0.0.1:6380/0?ssl_cert_reqs=none"), RedisSink)
    assert isinstance(create_sink("unix:///tmp/redis.sock"), RedisSink)
    consumer = create_consumer("redis://127.0.0.1:6379/0?stream=x", group="g", from_beginning=True)
    assert isinstance(consumer, RedisStreamConsumer) and consumer.group == "g" and consumer.from_beginning


def test_consumer_is_importable_from_core() -> None:
    from streamll.consumer import RedisStreamConsumer as FromCore

    assert FromCore is RedisStreamConsumer


def test_configure_rejects_a_bad_redis_url() -> None:
    with pytest.raises(ConfigurationError, match="maxlen"):
        streamll.configure(sinks=["redis://127.0.0.1:6379/0?maxlen=-5"])
    streamll.configure(sinks=None)


def test_logs_do_not_leak_the_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="streamll")
    sink = RedisSink(f"redis://app:{SECRET}@127.0.0.1:1/0?stream=s")
    sink.enqueue(streamll.events.Event(event_type="x"))
    sink.stop(timeout=0.3)
    assert sink.stats.dropped == 1
    assert SECRET not in caplog.text and SECRET not in str(sink.stats.last_error)


def test_the_plugin_card_matches_the_first_party_catalogue() -> None:
    import streamll.consumer
    from streamll.catalog import FIRST_PARTY
    from streamll.plugins import list_plugins

    (info,) = [info for info in list_plugins() if info.name == "redis"]
    assert info.card == FIRST_PARTY["redis"]
    assert streamll.consumer.RedisStreamConsumer is RedisStreamConsumer
