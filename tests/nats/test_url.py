"""nats:// and tls:// URLs: options, defaults, errors, and credentials that never show."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from streamll.errors import ConfigurationError
from streamll.plugins import create_consumer, create_sink
from streamll_nats import NatsSink, NatsStreamConsumer, parse_url
from streamll_nats.url import subject_matches

pytestmark = pytest.mark.nats

SECRET = "s3cr3t-Pa55"


@pytest.fixture(autouse=True)
def no_nats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamll_nats.url import ENV_VARS

    for name in [variable for names in ENV_VARS.values() for variable in names] + [
        "NATS_USER",
        "NATS_PASSWORD",
        "NATS_TOKEN",
        "NATS_CREDS",
        "NATS_NKEY",
        "NATS_CA",
        "NATS_CERT",
        "NATS_KEY",
    ]:
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    options = parse_url("nats://localhost")
    assert options.servers == ("nats://localhost:4222",)
    assert options.subject == "streamll.events" and options.stream == "STREAMLL"
    assert options.stream_subjects == ["streamll.events"]
    settings = options.stream_settings
    assert (settings.retention, settings.storage, settings.create) == ("limits", "file", True)
    assert settings.max_age is None and settings.max_msgs is None and settings.duplicate_window == 120.0
    assert options.user is None and options.password is None and options.token is None and not options.tls


def test_destination_and_stream_options() -> None:
    options = parse_url(
        "nats://127.0.0.1:4223?subject=app.tokens&stream=APP&subjects=app.>,audit.*&retention=workqueue"
        "&storage=memory&max_age=2h&max_msgs=1000&max_bytes=1048576&replicas=1&duplicate_window=30s&create=false"
    )
    assert options.servers == ("nats://127.0.0.1:4223",)
    assert (options.subject, options.stream) == ("app.tokens", "APP")
    settings = options.stream_settings
    assert settings.subjects == ("app.>", "audit.*") and options.stream_subjects == ["app.>", "audit.*"]
    assert (settings.retention, settings.storage) == ("workqueue", "memory")
    assert settings.max_age == 7200.0 and settings.max_msgs == 1000 and settings.max_bytes == 1048576
    assert settings.duplicate_window == 30.0 and settings.create is False


def test_several_servers() -> None:
    options = parse_url("nats://user:pw@a:4222,b:5222,c")
    assert options.servers == ("nats://a:4222", "nats://b:5222", "nats://c:4222")
    assert (options.user, options.password) == ("user", "pw")


def test_user_and_password_are_unquoted() -> None:
    options = parse_url("nats://al%40ice:p%3Ass%2Fw@h")
    assert (options.user, options.password) == ("al@ice", "p:ss/w")
    assert options.connect_kwargs()["user"] == "al@ice" and options.connect_kwargs()["password"] == "p:ss/w"


@pytest.mark.parametrize("url", [f"nats://{SECRET}@h:4222", f"nats://h:4222?token={SECRET}"])
def test_token_in_userinfo_or_query(url: str) -> None:
    options = parse_url(url)
    assert options.token == SECRET and options.user is None
    assert options.connect_kwargs()["token"] == SECRET


def test_token_twice_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="token"):
        parse_url("nats://tok@h?token=other")


def test_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_USER", "envuser")
    monkeypatch.setenv("NATS_PASSWORD", SECRET)
    assert (parse_url("nats://h").user, parse_url("nats://h").password) == ("envuser", SECRET)
    assert parse_url("nats://u:p@h").user == "u"  # the URL wins
    monkeypatch.delenv("NATS_USER")
    monkeypatch.setenv("NATS_TOKEN", SECRET)
    assert parse_url("nats://h").token == SECRET


def test_streamll_variables_come_before_the_nats_cli_ones() -> None:
    environ = {"STREAMLL_NATS_USER": "ours", "NATS_USER": "cli", "NATS_PASSWORD": SECRET}
    options = parse_url("nats://h", environ=environ)
    assert (options.user, options.password) == ("ours", SECRET)
    assert parse_url("nats://h", environ={"STREAMLL_NATS_TOKEN": SECRET}).token == SECRET
    assert (
        SECRET not in repr(options)
        and options.display_url == "nats://ours:***@h:4222?subject=streamll.events&stream=STREAMLL"
    )


def test_tls_scheme_and_options(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    secure = parse_url("tls://h:4443")
    assert secure.tls and secure.servers == ("tls://h:4443",)
    with_ca = parse_url(f"nats://h?tls_ca={ca}&tls_hostname=nats.internal")
    assert with_ca.tls and with_ca.tls_ca == str(ca) and with_ca.tls_hostname == "nats.internal"
    assert "tls" not in parse_url("nats://h").connect_kwargs()


def test_creds_and_nkey_files(tmp_path: Path) -> None:
    creds = tmp_path / "user.creds"
    creds.write_text("x")
    seed = tmp_path / "user.nk"
    seed.write_text("x")
    assert parse_url(f"nats://h?creds={creds}").connect_kwargs()["user_credentials"] == str(creds)
    assert parse_url(f"nats://h?nkey={seed}").connect_kwargs()["nkeys_seed"] == str(seed)
    with pytest.raises(ConfigurationError, match="no such file"):
        parse_url(f"nats://h?creds={tmp_path / 'missing.creds'}")
    with pytest.raises(ConfigurationError, match="not both"):
        parse_url(f"nats://h?creds={creds}&nkey={seed}")


def test_sink_and_consumer_options_from_the_url() -> None:
    options = parse_url(
        "nats://h?batch_size=50&buffer_size=100&linger=10ms&overflow=block&durable=w1&from_beginning=true"
        "&ack_wait=5s&fetch_batch=10&ack_timeout=3&max_in_flight=64&client_name=app"
    )
    assert options.sink_options == {"batch_size": 50, "buffer_size": 100, "linger": 0.01, "overflow": "block"}
    assert options.consumer_options == {"durable": "w1", "from_beginning": True, "ack_wait": 5.0, "fetch_batch": 10}
    assert options.ack_timeout == 3.0 and options.max_in_flight == 64 and options.connect_kwargs()["name"] == "app"
    sink = NatsSink("nats://h?batch_size=50&buffer_size=100&overflow=block")
    assert (sink.batch_size, sink.buffer_size, sink.overflow.value) == (50, 100, "block")
    consumer = NatsStreamConsumer("nats://h?durable=w1&ack_wait=5s&from_beginning=1")
    assert (consumer.durable, consumer.ack_wait, consumer.from_beginning) == ("w1", 5.0, True)
    override = NatsStreamConsumer("nats://h?durable=w1", durable="w2", subject="other.subject", stream="OTHER")
    assert (override.durable, override.subject, override.stream) == ("w2", "other.subject", "OTHER")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nats://h?colour=blue", "unknown NATS URL option 'colour'"),
        ("nats://h?subject=a..b", "not a valid NATS subject"),
        ("nats://h?subject=a.*", "wildcards are not allowed"),
        ("nats://h?subjects=a.>.b", "only be the last token"),
        ("nats://h?stream=my.stream", "not a valid JetStream stream name"),
        ("nats://h:notaport", "not an integer"),
        ("nats://h:70000", "out of range"),
        ("nats://h/streamll", "take no path"),
        ("nats://h?retention=forever", "expected one of limits, interest, workqueue"),
        ("nats://h?storage=tape", "expected one of file, memory"),
        ("nats://h?max_age=soon", "not a duration"),
        ("nats://h?max_msgs=0", "must be >= 1"),
        ("nats://h?create=maybe", "not a boolean"),
        ("nats://h?subject=a&subject=b", "given twice"),
        ("nats://h?overflow=explode", "unknown overflow policy"),
        ("http://h", "nats:// or tls://"),
        ("nats://", "needs a host"),
        ("localhost:4222", "expected a NATS URL"),
    ],
)
def test_bad_urls_raise_configuration_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        NatsSink(url)


def test_credentials_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="streamll")
    options = parse_url(f"nats://alice:{SECRET}@h:4222?subject=a.b&stream=S")
    assert options.masked_url() == "nats://alice:***@h:4222?subject=a.b&stream=S"
    assert SECRET not in repr(options) and SECRET not in str(options)
    token = parse_url(f"tls://{SECRET}@h")
    assert token.masked_url().startswith("tls://***@h:4222") and SECRET not in repr(token)
    sink = NatsSink(f"nats://alice:{SECRET}@h:4222?subject=a.b&stream=S")
    consumer = NatsStreamConsumer(f"nats://{SECRET}@h:4222")
    assert SECRET not in repr(sink) and SECRET not in sink.name and SECRET not in repr(consumer)
    with pytest.raises(ConfigurationError) as info:
        NatsSink(f"nats://alice:{SECRET}@h:4222?bogus=1")
    assert SECRET not in str(info.value)
    assert SECRET not in caplog.text


def test_schemes_are_registered_through_the_hook() -> None:
    assert isinstance(create_sink("nats://127.0.0.1:4222?subject=a.b"), NatsSink)
    assert isinstance(create_sink("tls://127.0.0.1:4222"), NatsSink)
    consumer = create_consumer("nats://127.0.0.1:4222?subject=a.b", durable="d")
    assert isinstance(consumer, NatsStreamConsumer) and consumer.durable == "d"


def test_consumer_importable_from_core() -> None:
    from streamll.consumer import NatsStreamConsumer as FromCore

    assert FromCore is NatsStreamConsumer


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("a.b", "a.b", True),
        ("a.*", "a.b", True),
        ("a.*", "a.b.c", False),
        ("a.>", "a.b.c", True),
        ("a.>", "a", False),
        (">", "x.y", True),
        ("a.b", "a.c", False),
    ],
)
def test_subject_matching(pattern: str, subject: str, expected: bool) -> None:
    assert subject_matches(pattern, subject) is expected


def test_durations() -> None:
    durations = [parse_url(f"nats://h?ack_timeout={v}").ack_timeout for v in ("30", "0.5", "500ms", "30s", "5m", "2h")]
    assert durations == [30.0, 0.5, 0.5, 30.0, 300.0, 7200.0]
    assert parse_url("nats://h?max_age=7d").stream_settings.max_age == 604800.0


def test_the_plugin_card_matches_the_first_party_catalogue() -> None:
    import streamll.consumer
    from streamll.catalog import FIRST_PARTY
    from streamll.plugins import list_plugins

    (info,) = [info for info in list_plugins() if info.name == "nats"]
    assert info.card == FIRST_PARTY["nats"]
    assert streamll.consumer.NatsStreamConsumer is NatsStreamConsumer
