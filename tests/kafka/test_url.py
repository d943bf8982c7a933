"""Kafka URLs: options, security settings from the URL or the environment, errors, and secrets kept out of text."""

from __future__ import annotations

import logging
import shutil
import ssl
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import pytest
from streamll import plugins
from streamll.errors import ConfigurationError
from streamll_kafka import KafkaSink, KafkaStreamConsumer, mask_url, parse_kafka_url
from streamll_kafka.client import consumer_kwargs, producer_kwargs

from tests.helpers import skip_or_fail

pytestmark = pytest.mark.kafka

SECRET = "s3cr#t/p@ss"
ENCODED = "s3cr%23t%2Fp%40ss"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA certificate, a client certificate and an encrypted client key made with openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        skip_or_fail("openssl is not installed")
    directory = tmp_path_factory.mktemp("tls")
    ca, cert, key = directory / "ca.pem", directory / "client.pem", directory / "client.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(directory / "ca.key"),
         "-out", str(ca), "-days", "1", "-subj", "/CN=test-ca"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=client", "-passout", "pass:keypass"],
        check=True, capture_output=True,
    )  # fmt: skip
    return {"ca": str(ca), "cert": str(cert), "key": str(key)}


def test_defaults() -> None:
    options = parse_kafka_url("kafka://broker1", environ={})
    assert options.bootstrap_servers == ("broker1:9092",)
    assert options.topic == "streamll"
    assert options.acks == "all"
    assert options.effective_idempotence is True
    assert options.security_protocol == "PLAINTEXT"
    assert options.compression is None


def test_several_brokers_ports_and_ipv6() -> None:
    options = parse_kafka_url("kafka://a:9093,b,[::1]:9094?topic=events", environ={})
    assert options.bootstrap_servers == ("a:9093", "b:9092", "[::1]:9094")
    assert options.topic == "events"


def test_producer_options() -> None:
    options = parse_kafka_url(
        "kafka://h:9092?acks=1&linger_ms=20&compression=gzip&client_id=svc&request_timeout_ms=5000", environ={}
    )
    assert (options.acks, options.linger_ms, options.compression) == (1, 20, "gzip")
    assert options.effective_idempotence is False, "idempotence follows acks=all unless set"
    kwargs = producer_kwargs(options)
    assert kwargs["acks"] == 1 and kwargs["compression_type"] == "gzip" and kwargs["client_id"] == "svc"
    assert kwargs["request_timeout_ms"] == 5000 and kwargs["enable_idempotence"] is False
    assert producer_kwargs(parse_kafka_url("kafka://h?enable_idempotence=false", environ={}))["acks"] == "all"
    assert parse_kafka_url("kafka://h?acks=-1&compression_type=zstd", environ={}).acks == "all"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("acks=2", "expected all"),
        ("acks=1&enable_idempotence=true", "needs acks=all"),
        ("compression=brotli", "expected one of none, gzip"),
        ("compression=gzip&compression_type=lz4", "not both"),
        ("linger_ms=-1", "must be >= 0"),
        ("linger_ms=soon", "expected an integer"),
        ("enable_idempotence=maybe", "expected one of"),
        ("topic=", "is empty"),
        ("topic=a&topic=b", "given twice"),
        ("partition=3", "unknown kafka URL option 'partition'"),
        ("password=x", "put credentials in the URL"),
        ("sasl_mechanism=GSSAPI", "expected one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
        ("security_protocol=SASL_SSL", "needs a username and a password"),
        ("ssl_cafile=/no/such/ca.pem", "no such file '/no/such/ca.pem'"),
    ],
)
def test_bad_options_are_named(query: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_kafka_url(f"kafka://h:9092?{query}", environ={})
    assert message in str(caught.value)


@pytest.mark.parametrize("topic", ["no such topic!", "a/b", "caf\u00e9", ".", "..", "t" * 250])
def test_a_topic_name_kafka_does_not_allow_is_refused_at_configuration(topic: str) -> None:
    """Kafka allows letters, digits, '.', '_' and '-' (at most 249); a broker refuses any other name, and a
    group consumer on one would start with no partitions and read nothing, so it fails here, in one line."""
    expected = (
        f"kafka topic {topic!r} is not a legal Kafka topic name: "
        "use letters, digits, '.', '_' and '-', at most 249 characters (and not '.' or '..')"
    )
    for make in (
        lambda: parse_kafka_url(f"kafka://h:9092?{urlencode({'topic': topic})}", environ={}),
        lambda: KafkaSink("kafka://h:9092", topic=topic),
        lambda: KafkaStreamConsumer("kafka://h:9092?topic=t", topic=topic),
    ):
        with pytest.raises(ConfigurationError) as caught:
            make()
        assert str(caught.value) == expected


@pytest.mark.parametrize("topic", ["events", "a.b_c-D9", "streamll.tokens", "_private", "t" * 249])
def test_every_legal_topic_name_is_accepted(topic: str) -> None:
    assert parse_kafka_url(f"kafka://h:9092?topic={topic}", environ={}).topic == topic
    assert KafkaSink("kafka://h:9092", topic=topic).topic == topic


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("localhost:9092", "expected a Kafka URL"),
        ("http://h:9092", "must start with one of kafka://, kafka+ssl://"),
        ("kafka://h:9092/mytopic", "name the topic with ?topic=NAME"),
        ("kafka://h:99999", "invalid port"),
        ("kafka://h:port", "invalid port"),
        ("kafka://h#x", "has a '#' part"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_kafka_url(url, environ={})
    assert message in str(caught.value)


def test_missing_compression_library_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiokafka import codec

    monkeypatch.setattr(codec, "has_snappy", lambda: False)
    with pytest.raises(ConfigurationError, match=r"compression=snappy needs the cramjam library.*pip install"):
        parse_kafka_url("kafka://h?compression=snappy", environ={})
    assert parse_kafka_url("kafka://h?compression=gzip", environ={}).compression == "gzip"


def test_tls_from_scheme_and_files(tls_files: dict[str, str]) -> None:
    plain = parse_kafka_url("kafka+ssl://h:9093", environ={})
    assert plain.security_protocol == "SSL" and plain.uses_ssl
    url = f"kafka://h:9093?ssl_cafile={tls_files['ca']}&ssl_certfile={tls_files['cert']}&ssl_keyfile={tls_files['key']}"
    options = parse_kafka_url(url + "&ssl_password=keypass", environ={})
    assert options.security_protocol == "SSL", "TLS files alone turn TLS on"
    context = producer_kwargs(options)["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert not parse_kafka_url(url + "&ssl_password=keypass&ssl_check_hostname=false", environ={}).ssl_check_hostname


def test_wrong_key_password_fails_without_printing_it(tls_files: dict[str, str]) -> None:
    url = f"kafka+ssl://h?ssl_certfile={tls_files['cert']}&ssl_keyfile={tls_files['key']}&ssl_password=wrong-pass"
    options = parse_kafka_url(url, environ={})
    with pytest.raises(ConfigurationError, match="kafka TLS setup failed") as caught:
        producer_kwargs(options)
    assert "wrong-pass" not in str(caught.value)
    assert "wrong-pass" not in repr(options) and "wrong-pass" not in mask_url(url)


def test_tls_files_need_a_tls_protocol(tls_files: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="does not use TLS"):
        parse_kafka_url(f"kafka://h?security_protocol=PLAINTEXT&ssl_cafile={tls_files['ca']}", environ={})
    with pytest.raises(ConfigurationError, match="contradicts"):
        parse_kafka_url("kafka+ssl://h?security_protocol=SASL_PLAINTEXT", environ={})


def test_sasl_credentials_in_the_url() -> None:
    options = parse_kafka_url(f"kafka+ssl://alice:{ENCODED}@h:9093?sasl_mechanism=scram-sha-512", environ={})
    assert options.security_protocol == "SASL_SSL"
    assert options.sasl_mechanism == "SCRAM-SHA-512"
    assert (options.sasl_username, options.sasl_password, options.credential_source) == ("alice", SECRET, "url")
    kwargs = consumer_kwargs(options, group="g", from_beginning=True)
    assert kwargs["sasl_plain_username"] == "alice" and kwargs["sasl_plain_password"] == SECRET
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512" and kwargs["enable_auto_commit"] is False
    assert kwargs["auto_offset_reset"] == "earliest" and kwargs["group_id"] == "g"

    plain = parse_kafka_url(f"kafka://alice:{ENCODED}@h:9092", environ={})
    assert plain.security_protocol == "SASL_PLAINTEXT" and plain.sasl_mechanism == "PLAIN"


def test_credentials_from_the_environment() -> None:
    environ = {
        "STREAMLL_KAFKA_SASL_USERNAME": "svc",
        "STREAMLL_KAFKA_SASL_PASSWORD": SECRET,
        "KAFKA_SASL_PASSWORD": "ignored-because-streamll-first",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
    }
    options = parse_kafka_url("kafka+ssl://h:9093", environ=environ)
    assert options.security_protocol == "SASL_SSL"
    assert (options.sasl_username, options.sasl_password) == ("svc", SECRET)
    assert options.sasl_mechanism == "SCRAM-SHA-256"
    assert options.credential_source == "STREAMLL_KAFKA_SASL_PASSWORD"

    fallback = parse_kafka_url("kafka+ssl://h", environ={"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"})
    assert (fallback.sasl_username, fallback.credential_source) == ("u", "KAFKA_SASL_PASSWORD")

    from_url = parse_kafka_url("kafka+ssl://bob:pw@h", environ=environ)
    assert (from_url.sasl_username, from_url.sasl_password, from_url.credential_source) == ("bob", "pw", "url")

    ignored = parse_kafka_url("kafka://h?security_protocol=SSL", environ=environ)
    assert ignored.sasl_username is None, "SASL variables do not apply to an explicit non-SASL protocol"


def test_secrets_never_appear_in_text(caplog: pytest.LogCaptureFixture) -> None:
    url = f"kafka+ssl://alice:{ENCODED}@h:9093?topic=t&sasl_password={ENCODED}x"
    with pytest.raises(ConfigurationError) as caught:
        parse_kafka_url(url, environ={})
    assert "given both" in str(caught.value) and SECRET not in str(caught.value)

    url = f"kafka+ssl://alice:{ENCODED}@h:9093?topic=t"
    options = parse_kafka_url(url, environ={})
    for text in (repr(options), str(options), options.display_url, mask_url(url)):
        assert SECRET not in text and ENCODED not in text, text
    assert options.display_url == "kafka+ssl://alice:***@h:9093?topic=t"
    assert mask_url(url) == "kafka+ssl://alice:***@h:9093?topic=t"
    assert mask_url(f"kafka://h?sasl_password={ENCODED}&topic=t") == "kafka://h?sasl_password=***&topic=t"

    sink = KafkaSink(url)
    consumer = KafkaStreamConsumer(url, group="g")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("streamll").info("sink %r name %s consumer %r", sink, sink.name, consumer)
    assert SECRET not in caplog.text and ENCODED not in caplog.text
    with pytest.raises(ConfigurationError) as unknown:
        parse_kafka_url(url + "&bogus=1", environ={})
    assert SECRET not in str(unknown.value)


def test_sink_and_consumer_options_from_the_url() -> None:
    sink = KafkaSink("kafka://h?topic=t&buffer_size=50&batch_size=7&linger=0.01&overflow=drop_newest&group=g")
    assert (sink.topic, sink.buffer_size, sink.batch_size, sink.linger, sink.overflow.value) == (
        "t", 50, 7, 0.01, "drop_newest",
    )  # fmt: skip
    assert KafkaSink("kafka://h?topic=t", topic="override", batch_size=3).topic == "override"

    consumer = KafkaStreamConsumer("kafka://h?topic=t&group=g&from_beginning=true&acks=1")
    assert (consumer.topic, consumer.group, consumer.from_beginning) == ("t", "g", True)
    explicit = KafkaStreamConsumer(
        "kafka://h?topic=t&group=g&from_beginning=true", topic="u", group="h", from_beginning=False
    )
    assert (explicit.topic, explicit.group, explicit.from_beginning) == ("u", "h", False)
    assert KafkaStreamConsumer("kafka://h").from_beginning is False


def test_plugin_registers_both_schemes() -> None:
    assert {"kafka", "kafka+ssl"} <= set(plugins.sink_schemes())
    assert {"kafka", "kafka+ssl"} <= set(plugins.consumer_schemes())
    sink = plugins.create_sink("kafka://h:9092?topic=registered")
    assert isinstance(sink, KafkaSink) and sink.topic == "registered"
    consumer = plugins.create_consumer("kafka+ssl://h:9093?topic=t", group="g")
    assert isinstance(consumer, KafkaStreamConsumer) and consumer.options.uses_ssl and consumer.group == "g"
    from streamll.consumer import KafkaStreamConsumer as lazily_imported

    assert lazily_imported is KafkaStreamConsumer
    with pytest.raises(ConfigurationError, match="unknown kafka URL option"):
        plugins.create_sink("kafka://h?stream=x")


def test_readme_documents_every_option() -> None:
    from streamll_kafka.url import ENV_VARS, KNOWN_OPTIONS

    readme = (Path(__file__).parents[2] / "packages" / "streamll-kafka" / "README.md").read_text()
    missing = [name for name in KNOWN_OPTIONS if f"`{name}`" not in readme]
    missing += [variable for names in ENV_VARS.values() for variable in names if variable not in readme]
    assert not missing, f"README.md does not document: {missing}"


def test_the_plugin_card_matches_the_first_party_catalogue() -> None:
    import streamll.consumer
    from streamll.catalog import FIRST_PARTY
    from streamll.plugins import list_plugins

    (info,) = [info for info in list_plugins() if info.name == "kafka"]
    assert info.card == FIRST_PARTY["kafka"]
    assert streamll.consumer.KafkaStreamConsumer is KafkaStreamConsumer
