"""streamll.url_options: the query-option converters, query parsing, sink options and URL masking plugins share."""

from __future__ import annotations

from typing import Annotated, ClassVar

import pytest
from pydantic import model_validator
from streamll.errors import ConfigurationError
from streamll.sinks.base import BaseSink, Overflow
from streamll.url_options import (
    BOOLEAN,
    SINK_OPTIONS,
    OptionReader,
    UrlOptions,
    at_least,
    display_url,
    env_names,
    from_environment,
    mask_url,
    parse_hosts,
    sink_arguments,
    split_url,
    userinfo,
)

read = OptionReader("demo")


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", True), ("TRUE", True), (" yes ", True), ("on", True),
    ("0", False), ("false", False), ("No", False), ("off", False),
])  # fmt: skip
def test_boolean(raw: str, expected: bool) -> None:
    assert read.boolean("flag", raw) is expected


def test_boolean_error_names_transport_option_and_words() -> None:
    with pytest.raises(ConfigurationError) as caught:
        read.boolean("flag", "perhaps")
    message = str(caught.value)
    assert message.startswith("demo URL option flag='perhaps' is not a boolean")
    assert "expected one of 1, true, yes, on, 0, false, no, off" in message


def test_integer_with_a_minimum() -> None:
    assert read.integer("n", "0") == 0
    assert read.integer("n", "7", minimum=1) == 7
    assert read.at_least(2)("n", "2") == 2
    with pytest.raises(ConfigurationError, match=r"demo URL option n='x': expected an integer"):
        read.integer("n", "x")
    with pytest.raises(ConfigurationError, match=r"demo URL option n='0': must be >= 1"):
        read.at_least(1)("n", "0")
    with pytest.raises(ConfigurationError, match="must be >= 0"):
        read.integer("n", "-3")


@pytest.mark.parametrize(("raw", "seconds"), [
    ("30", 30.0), ("0", 0.0), ("0.5", 0.5), (".25", 0.25), ("500ms", 0.5), ("30s", 30.0),
    ("5m", 300.0), ("2h", 7200.0), ("7d", 604800.0), (" 10 ms ", 0.01), ("-0", 0.0),
])  # fmt: skip
def test_seconds_take_plain_numbers_and_units(raw: str, seconds: float) -> None:
    assert read.seconds("wait", raw) == pytest.approx(seconds)


@pytest.mark.parametrize(("raw", "message"), [
    ("soon", "is not a duration: expected a number of seconds, or a number with ms/s/m/h/d"),
    ("", "is not a duration"),
    ("5 weeks", "is not a duration"),
    ("nan", "is not a duration"),
    ("-1", "must be >= 0"),
    ("-2s", "must be >= 0"),
])  # fmt: skip
def test_seconds_errors(raw: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        read.seconds("wait", raw)
    assert str(caught.value).startswith(f"demo URL option wait={raw!r}")


def test_text_must_not_be_empty() -> None:
    assert read.text("name", "x") == "x"
    with pytest.raises(ConfigurationError, match="demo URL option name is empty"):
        read.text("name", "")


def test_choice_matches_any_case_and_returns_the_listed_spelling() -> None:
    mechanism = read.choice(("PLAIN", "SCRAM-SHA-256"))
    assert mechanism("m", "scram-sha-256") == "SCRAM-SHA-256"
    assert read.choice(("file", "memory"))("storage", " MEMORY ") == "memory"
    with pytest.raises(ConfigurationError, match=r"demo URL option m='GSSAPI': expected one of PLAIN, SCRAM-SHA-256"):
        mechanism("m", "GSSAPI")


def test_source_names_where_the_value_came_from() -> None:
    environment = OptionReader("demo", "environment variable")
    with pytest.raises(ConfigurationError, match=r"^demo environment variable DEMO_FLAG='x' is not a boolean"):
        environment.boolean("DEMO_FLAG", "x")


def test_query_keeps_blank_values_and_decodes() -> None:
    assert read.query("a=1&b=&c=x%2Fy", {"a", "b", "c"}) == {"a": "1", "b": "", "c": "x/y"}
    assert read.query("", {"a"}) == {}


def test_query_rejects_repeated_and_unknown_options() -> None:
    with pytest.raises(ConfigurationError, match="demo URL option 'a' is given twice"):
        read.query("a=1&a=2", {"a"})
    with pytest.raises(ConfigurationError, match="unknown demo URL option 'z'; known options: a, b"):
        read.query("z=1", {"b", "a"})


def test_query_says_where_credentials_go() -> None:
    with pytest.raises(ConfigurationError, match="unknown demo URL option 'password'"):
        read.query("password=x", {"a"})
    with pytest.raises(ConfigurationError, match=r"'password' is not supported: put credentials in the URL") as caught:
        read.query("password=hunter2", {"a"}, credentials_hint="the URL (demo://user:password@host)")
    assert "hunter2" not in str(caught.value)


def test_sink_options_are_taken_out_of_the_query_and_converted() -> None:
    query = {
        "buffer_size": "50",
        "buffer_bytes": "8MiB",
        "batch_size": "7",
        "linger": "10ms",
        "overflow": "spill",
        "block_timeout": "2",
        "spill_path": "/tmp/s",
        "topic": "t",
    }
    options = read.sink_options(query)
    assert options == {
        "buffer_size": 50,
        "buffer_bytes": 8 * 1024 * 1024,
        "batch_size": 7,
        "linger": 0.01,
        "overflow": "spill",
        "block_timeout": 2.0,
        "spill_path": "/tmp/s",
    }
    assert query == {"topic": "t"}
    assert set(options) == set(SINK_OPTIONS)


@pytest.mark.parametrize(("query", "message"), [
    ({"buffer_size": "0"}, "buffer_size='0': must be >= 1"),
    ({"batch_size": "many"}, "expected an integer"),
    ({"linger": "soon"}, "is not a duration"),
    ({"overflow": ""}, "overflow is empty"),
    ({"buffer_bytes": "lots"}, "buffer_bytes='lots' is not a size in bytes"),
    ({"buffer_bytes": "1KB"}, "must be >= 1024 bytes"),
])  # fmt: skip
def test_bad_sink_options(query: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        read.sink_options(query)


def test_sink_arguments_feed_base_sink() -> None:
    from_url = read.sink_options({"buffer_size": "50", "overflow": "drop_newest", "linger": "0"})
    arguments = sink_arguments(from_url, {"buffer_size": 9, "batch_size": None, "name": None}, default_name="demo:x")
    assert arguments == {"buffer_size": 9, "overflow": "drop_newest", "linger": 0.0, "name": "demo:x"}
    sink = BaseSink(**arguments)
    assert (sink.name, sink.buffer_size, sink.overflow, sink.linger) == ("demo:x", 9, Overflow.DROP_NEWEST, 0.0)
    assert sink_arguments({}, {"name": "mine"}, default_name="demo:x")["name"] == "mine"
    assert sink_arguments({"name": "from-url"}, {}, default_name="demo:x")["name"] == "from-url"


@pytest.mark.parametrize(("url", "masked"), [
    ("redis://u:s3cret@h:1/0", "redis://u:***@h:1/0"),
    ("rediss://:s3cret@h", "rediss://:***@h"),
    ("redis://app:s3cret/with/slash@h", "redis://app:***@h"),
    ("kafka://u:pa#ss@h:9092?topic=t", "kafka://u:***@h:9092?topic=t"),
    ("kafka://h?sasl_password=s3cret&topic=t", "kafka://h?sasl_password=***&topic=t"),
    ("nats://h?token=s3cret", "nats://h?token=***"),
    ("redis://u@h", "redis://u@h"),
    ("redis://h:6379/0", "redis://h:6379/0"),
    ("not a url", "not a url"),
])  # fmt: skip
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_split_url_lower_cases_the_scheme() -> None:
    parts = split_url("DEMO://u:pw@h:1/x?a=1", "Demo", example="demo://h")
    assert (parts.scheme, parts.hostname, parts.port, parts.path, parts.query) == ("demo", "h", 1, "/x", "a=1")


@pytest.mark.parametrize(("url", "message"), [
    ("localhost:1", "expected a Demo URL like 'demo://h', got 'localhost:1'"),
    (None, "expected a Demo URL like 'demo://h', got None"),
    ("demo://u:s3cret@[::1", "cannot parse Demo URL 'demo://u:***@[::1'"),
    ("demo://u:s3c#ret@h", "Demo URL 'demo://u:***@h' has a '#' part; percent-encode '#' in passwords as %23"),
])  # fmt: skip
def test_split_url_errors_show_the_url_masked(url: object, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        split_url(url, "Demo", example="demo://h")
    assert message in str(caught.value)
    assert "s3c" not in str(caught.value)


@pytest.mark.parametrize(("text", "hosts"), [
    ("h", (("h", 9),)),
    ("a:1,b, c:3", (("a", 1), ("b", 9), ("c", 3))),
    ("[::1]:5,[fe80::2]", (("::1", 5), ("fe80::2", 9))),
    ("", ()),
])  # fmt: skip
def test_parse_hosts(text: str, hosts: tuple[tuple[str, int], ...]) -> None:
    assert parse_hosts(f"demo://{text}", text, "demo", 9) == hosts


@pytest.mark.parametrize(("text", "message"), [
    ("a,,b", "demo URL 'demo://a,,b' has an empty host in its host list"),
    ("h:port", "demo URL 'demo://h:port' has an invalid port (not an integer)"),
    ("h:70000", "demo URL 'demo://h:70000' has an invalid port (out of range 1-65535)"),
    (":1", "demo URL 'demo://:1' has a host without a name"),
    ("[::1", "has a host that is not written [ipv6]:port"),
])  # fmt: skip
def test_parse_hosts_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_hosts(f"demo://{text}", text, "demo", 9)
    assert message in str(caught.value)


def test_userinfo_splits_and_decodes_the_credentials() -> None:
    assert userinfo("h:1") == (None, None)
    assert userinfo("u%40x:p%3Aw@h") == ("u@x", "p:w")
    assert userinfo("u@h") == ("u", None)
    assert userinfo(":pw@h") == ("", "pw")


def test_credentials_from_the_environment_ours_first_then_the_tools_own() -> None:
    names = env_names("demo", "password", "DEMO_PASSWORD")
    assert names == ("STREAMLL_DEMO_PASSWORD", "DEMO_PASSWORD")
    assert from_environment(names, {"DEMO_PASSWORD": "b", "STREAMLL_DEMO_PASSWORD": "a"}) == (
        "a",
        "STREAMLL_DEMO_PASSWORD",
    )
    assert from_environment(names, {"DEMO_PASSWORD": "b", "STREAMLL_DEMO_PASSWORD": ""}) == ("b", "DEMO_PASSWORD")
    assert from_environment(names, {}) is None


@pytest.mark.parametrize(("arguments", "shown"), [
    ({"user": "u", "secret": True}, "demo://u:***@h:1?k=v"),
    ({"user": "u"}, "demo://u@h:1?k=v"),
    ({"secret": True}, "demo://:***@h:1?k=v"),
    ({"token": True}, "demo://***@h:1?k=v"),
    ({"user": "a b/c", "secret": True}, "demo://a%20b%2Fc:***@h:1?k=v"),
])  # fmt: skip
def test_display_url(arguments: dict[str, object], shown: str) -> None:
    assert display_url("demo", "h:1", query={"k": "v"}, **arguments) == shown  # type: ignore[arg-type]


class DemoOptions(UrlOptions):
    """A transport's options as the plugins declare them."""

    transport: ClassVar[str] = "demo"
    count: Annotated[int, at_least(1)] = 1
    flag: Annotated[bool, BOOLEAN] = False
    secret: str | None = None

    @model_validator(mode="after")
    def _check(self) -> DemoOptions:
        if self.count > 10:
            raise ConfigurationError(f"demo count must be <= 10, got {self.count}")
        return self

    @property
    def display_url(self) -> str:
        return display_url("demo", "h", secret=self.secret is not None)


def test_declared_fields_are_the_option_table() -> None:
    table = DemoOptions.query_options()
    assert set(table) == {"count", "flag"}
    assert table["count"]("count", "3") == 3
    with pytest.raises(ConfigurationError, match="demo URL option count='0': must be >= 1"):
        table["count"]("count", "0")
    assert DemoOptions.query_options("environment variable")["flag"]("DEMO_FLAG", "yes") is True


def test_checks_raise_configuration_errors_and_reprs_hide_secrets() -> None:
    with pytest.raises(ConfigurationError, match="demo count must be <= 10, got 11"):
        DemoOptions(count=11)
    with pytest.raises(ConfigurationError, match="demo option count"):
        DemoOptions(count="many")  # type: ignore[arg-type]
    options = DemoOptions(secret="hunter2")
    assert "hunter2" not in repr(options) and "hunter2" not in str(options)
    assert repr(options) == "DemoOptions('demo://:***@h')"
    assert options.replace(count=5) == DemoOptions(secret="hunter2", count=5)
    with pytest.raises(ConfigurationError, match="demo count must be <= 10"):
        options.replace(count=12)
