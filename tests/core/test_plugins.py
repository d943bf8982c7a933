"""Plugins: registering sink and consumer schemes, loading entry points one by one, clear errors."""

from __future__ import annotations

import inspect
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import streamll
import streamll.consumer
from streamll import hookspecs
from streamll.core.serialization import decode_event
from streamll.errors import ConfigurationError, PluginError, UnknownSchemeError
from streamll.plugins import (
    DISABLE_AUTOLOAD_ENV,
    DISABLE_PLUGINS_ENV,
    consumer_schemes,
    create_sink,
    list_plugins,
    register_plugin,
    sink_schemes,
)

from tests.core.conftest import entry_point
from tests.core.fake_plugins import GoodPlugin, NonCallablePlugin, QueueConsumer, SchemeSink

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"

GOOD = entry_point("good", "tests.core.fake_plugins:GoodPlugin")
BROKEN = entry_point("broken", "tests.core.no_such_module")
MODULE = entry_point("thirdparty", "tests.core.fake_plugins")


def plugin(name: str) -> Any:
    return next(info for info in list_plugins() if info.name == name)


# ---------------------------------------------------------------------- registering by hand


def test_a_registered_plugin_adds_a_sink_scheme_for_configure(installed_plugins: Callable[..., None]) -> None:
    register_plugin(GoodPlugin, name="good")
    assert "myscheme" in sink_schemes()
    streamll.configure(sinks=["myscheme://alpha"])
    sink = SchemeSink.built[-1]
    assert sink.url == "myscheme://alpha"
    streamll.emit("custom", data={"hello": "plugin"})
    assert streamll.flush(timeout=10)
    assert [event.data for event in sink.events] == [{"hello": "plugin"}]
    assert plugin("good").sink_schemes == ["myscheme"] and plugin("good").error is None


def test_a_registered_plugin_adds_a_consumer_scheme(installed_plugins: Callable[..., None]) -> None:
    register_plugin(GoodPlugin, name="good")
    consumer = streamll.consumer.from_url("myscheme://beta", event_types=["token"], execution_id="e1")
    assert isinstance(consumer, QueueConsumer)
    assert consumer.url == "myscheme://beta"
    assert consumer.event_types == frozenset({"token"}) and consumer.execution_id == "e1"
    assert "myscheme" in consumer_schemes()


def test_builtin_schemes_are_there_without_any_plugin(installed_plugins: Callable[..., None]) -> None:
    assert sink_schemes() == ["memory", "terminal"]
    assert [info.name for info in list_plugins()] == ["streamll.builtin"]


def test_schemes_are_case_insensitive(installed_plugins: Callable[..., None]) -> None:
    register_plugin(GoodPlugin, name="good")
    assert isinstance(create_sink("MyScheme://gamma"), SchemeSink)


# ---------------------------------------------------------------------- entry points


def test_entry_points_load_one_by_one_and_a_broken_one_is_skipped(installed_plugins: Callable[..., None]) -> None:
    installed_plugins(BROKEN, GOOD, MODULE)
    with pytest.warns(RuntimeWarning, match=r"'broken'.*failed to load and was skipped.*ModuleNotFoundError"):
        schemes = sink_schemes()
    assert {"myscheme", "fakemod", "memory", "terminal"} <= set(schemes)

    broken = plugin("broken")
    assert broken.error is not None and "ModuleNotFoundError" in broken.error
    assert broken.sink_schemes == [] and broken.module == "tests.core.no_such_module"
    assert plugin("good").error is None and plugin("thirdparty").sink_schemes == ["fakemod"]

    streamll.configure(sinks=["myscheme://delta", "fakemod://epsilon"])
    streamll.emit("custom", data={"i": 1})
    assert streamll.flush(timeout=10)
    assert all(len(sink.events) == 1 for sink in SchemeSink.built[-2:])


def test_a_plugin_whose_hook_raises_is_reported(installed_plugins: Callable[..., None]) -> None:
    installed_plugins(entry_point("exploding", "tests.core.fake_plugins:ExplodingPlugin"), GOOD)
    with pytest.warns(RuntimeWarning, match="plugin bug while registering"):
        info = plugin("exploding")
    assert info.error is not None and "RuntimeError" in info.error
    assert "myscheme" in sink_schemes()


def test_a_plugin_registering_a_non_callable_is_reported(installed_plugins: Callable[..., None]) -> None:
    with pytest.warns(RuntimeWarning, match="non-callable"):
        register_plugin(NonCallablePlugin, name="noncallable")
    assert "notcallable" not in sink_schemes()
    assert "non-callable" in (plugin("noncallable").error or "")
    assert issubclass(PluginError, streamll.StreamllError)


def test_autoload_can_be_disabled(installed_plugins: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> None:
    installed_plugins(BROKEN, GOOD)
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the broken plugin is not even imported
        assert sink_schemes() == ["memory", "terminal"]
    assert [info.name for info in list_plugins()] == ["streamll.builtin"]


def test_single_plugins_can_be_disabled(
    installed_plugins: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    installed_plugins(BROKEN, GOOD, MODULE)
    monkeypatch.setenv(DISABLE_PLUGINS_ENV, "broken, good")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sink_schemes() == ["fakemod", "memory", "terminal"]
    assert {info.name for info in list_plugins()} == {"streamll.builtin", "thirdparty"}


# ---------------------------------------------------------------------- errors


def test_an_unknown_first_party_scheme_names_the_extra_to_install(installed_plugins: Callable[..., None]) -> None:
    with pytest.raises(UnknownSchemeError) as info:
        streamll.configure(sinks=["kafka://localhost:9092?topic=streamll"])
    assert isinstance(info.value, ConfigurationError)
    assert "pip install 'streamll[kafka]'" in str(info.value)
    assert info.value.scheme == "kafka" and info.value.extra == "kafka"
    with pytest.raises(UnknownSchemeError, match=re.escape("pip install 'streamll[redis]'")):
        streamll.consumer.from_url("rediss://localhost:6380")
    with pytest.raises(UnknownSchemeError, match=re.escape("pip install 'streamll[nats]'")):
        create_sink("nats://localhost:4222")


def test_a_plugin_card_gives_the_install_hint_and_the_consumer_name(installed_plugins: Callable[..., None]) -> None:
    installed_plugins(entry_point("pigeon", "tests.core.fake_plugins:CardPlugin"))
    with pytest.raises(UnknownSchemeError, match=re.escape("pip install 'streamll[pigeon]'")):
        create_sink("pigeon://coop")  # the plugin declares the scheme but registers no sink for it
    assert streamll.consumer.QueueConsumer is QueueConsumer
    (info,) = [info for info in list_plugins() if info.name == "pigeon"]
    assert info.card is not None and info.card.schemes == ("pigeon", "coop")


def test_an_installed_card_replaces_the_catalogue_entry(installed_plugins: Callable[..., None]) -> None:
    installed_plugins(entry_point("redis", "tests.core.fake_plugins:CardPlugin"))
    with pytest.raises(UnknownSchemeError) as info:
        create_sink("rediss://h")
    assert info.value.extra is None  # the plugin named redis declares other schemes: no hint from the catalogue


def test_an_old_0_1_name_loads_what_the_installed_plugin_declares(installed_plugins: Callable[..., None]) -> None:
    installed_plugins(entry_point("redis", "tests.core.fake_plugins:OldNamePlugin"))
    with pytest.warns(
        DeprecationWarning, match=re.escape("streamll.RedisSink is deprecated: write `SchemeSink('myscheme://')`")
    ):
        assert streamll.RedisSink is SchemeSink
    with pytest.warns(DeprecationWarning, match=re.escape("streamll.sinks.RedisSink is deprecated")):
        from streamll.sinks import RedisSink
    assert RedisSink is SchemeSink


def test_an_old_name_of_a_plugin_not_installed_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, installed_plugins: Callable[..., None]
) -> None:
    installed_plugins()  # no entry points: the catalogue describes the redis plugin
    monkeypatch.setitem(sys.modules, "streamll_redis.legacy", None)  # as if streamll-redis were not installed
    with pytest.warns(DeprecationWarning), pytest.raises(ImportError, match=re.escape("pip install 'streamll[redis]'")):
        streamll.RedisSink  # noqa: B018


def test_a_missing_top_level_name_is_an_attribute_error_and_loads_no_plugin(
    installed_plugins: Callable[..., None],
) -> None:
    installed_plugins(BROKEN)  # loading it would warn
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="module 'streamll' has no attribute 'NoSuchSink'"):
            streamll.NoSuchSink  # noqa: B018
        with pytest.raises(ImportError, match="NoSuchSink"):
            from streamll.sinks import NoSuchSink  # noqa: F401


def test_a_broken_first_party_plugin_is_named_in_the_error(installed_plugins: Callable[..., None]) -> None:
    installed_plugins(entry_point("kafka", "tests.core.no_such_kafka_plugin"))
    with pytest.warns(RuntimeWarning), pytest.raises(UnknownSchemeError) as info:
        create_sink("kafka://localhost:9092")
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "'kafka' is installed but failed to load" in notes and "ModuleNotFoundError" in notes


def test_an_unknown_third_party_scheme_lists_what_is_available(installed_plugins: Callable[..., None]) -> None:
    with pytest.raises(UnknownSchemeError) as info:
        streamll.configure(sinks=["pigeon://coop"])
    message = str(info.value)
    assert "'pigeon'" in message and "install a plugin that registers it" in message
    assert "memory, terminal" in message


@pytest.mark.parametrize("bad", ["localhost:6379", "redis", "", "://nowhere", "/var/run/redis.sock"])
def test_a_string_that_is_not_a_url_is_a_clear_error(installed_plugins: Callable[..., None], bad: str) -> None:
    with pytest.raises(ConfigurationError, match="expected a URL"):
        streamll.configure(sinks=[bad])


def test_url_errors_never_show_passwords(installed_plugins: Callable[..., None]) -> None:
    with pytest.raises(ConfigurationError) as info:
        streamll.configure(sinks=["redis//user:s3cret@localhost:6379"])  # a typo: no colon after the scheme
    assert "s3cret" not in str(info.value)
    assert "user:***@localhost" in str(info.value)


def test_sinks_must_be_a_list(installed_plugins: Callable[..., None]) -> None:
    with pytest.raises(ConfigurationError, match="list"):
        streamll.configure(sinks="memory://x")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not a sink"):
        streamll.configure(sinks=[object()])


# ---------------------------------------------------------------------- documentation


def hookspec_functions() -> list[Callable[..., Any]]:
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return [
        function
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("streamll_") and hasattr(function, marker)
    ]


def test_there_are_hookspecs() -> None:
    assert {function.__name__ for function in hookspec_functions()} == {
        "streamll_register_sinks",
        "streamll_register_consumers",
        "streamll_register_execution_logs",
        "streamll_plugin_card",
    }


@pytest.mark.parametrize("function", hookspec_functions(), ids=lambda function: function.__name__)
def test_every_hook_is_documented_with_its_signature(function: Callable[..., Any]) -> None:
    docs = DOCS.read_text()
    name = function.__name__
    parameters = ", ".join(inspect.signature(function).parameters)
    assert re.search(rf"^#+ `?{name}\({parameters}\)`?$", docs, re.MULTILINE), f"no heading for {name}({parameters})"
    signature = str(inspect.signature(function)).replace("'", "")
    assert f"def {name}{signature}:" in docs, f"docs/plugins.md must show: def {name}{signature}:"
    first_line = (function.__doc__ or "").strip().splitlines()[0]
    assert first_line in docs


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.DOTALL)


def test_every_python_example_in_the_plugin_guide_compiles() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 5
    for block in blocks:
        compile(block, str(DOCS), "exec")


def test_the_guides_url_options_example_works() -> None:
    block = next(block for block in python_blocks() if "class JsonlOptions" in block)
    namespace: dict[str, Any] = {"__name__": "streamll_jsonl.url"}
    exec(compile(block, str(DOCS), "exec", dont_inherit=True), namespace)  # as its own module: no __future__ here
    options = namespace["parse_url"]("jsonl:///tmp/e.jsonl?rotate_bytes=2048&fsync_every=500ms&buffer_size=10")
    assert (options.path, options.fsync_every, options.sink_options) == ("/tmp/e.jsonl", 0.5, {"buffer_size": 10})
    assert repr(options) == "JsonlOptions('jsonl:///tmp/e.jsonl?rotate_bytes=2048')"
    with pytest.raises(ConfigurationError, match=r"jsonl URL option rotate_bytes='1': must be >= 1024"):
        namespace["parse_url"]("jsonl:///tmp/e.jsonl?rotate_bytes=1")


def test_the_guides_example_sink_works(installed_plugins: Callable[..., None], tmp_path: Path) -> None:
    sink_module = next(block for block in python_blocks() if "class JsonlSink" in block)
    namespace: dict[str, Any] = {"__name__": "streamll_jsonl.sink"}
    exec(sink_module, namespace)
    jsonl_sink = namespace["JsonlSink"]

    class JsonlPlugin:
        @staticmethod
        @streamll.hookimpl
        def streamll_register_sinks(register: Callable[..., Any]) -> None:
            register("jsonl", jsonl_sink.from_url)

    register_plugin(JsonlPlugin, name="jsonl")
    path = tmp_path / "events.jsonl"
    streamll.configure(sinks=[f"jsonl://{path}"])
    with streamll.trace("example") as span:
        span.emit("hit", data={"doc": "d1"})
    assert streamll.flush(timeout=10)
    streamll.configure(sinks=None)  # stops the sink built from the URL: the file is closed
    lines = [decode_event(line) for line in path.read_bytes().splitlines()]
    assert [event.event_type for event in lines] == ["start", "hit", "end"]
    with pytest.raises(ConfigurationError, match="needs a path"):
        streamll.configure(sinks=["jsonl://"])
