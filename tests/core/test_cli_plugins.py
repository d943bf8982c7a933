"""``streamll plugins``: what is installed, which schemes it serves, what failed to load."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from click.testing import CliRunner
from streamll.cli import main

from tests.core.conftest import entry_point


def run_plugins() -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["plugins"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output.splitlines()


def test_lists_the_builtin_sinks(installed_plugins: Callable[..., None]) -> None:
    code, lines = run_plugins()
    assert code == 0
    assert lines[0] == "streamll.builtin  (streamll.builtin_plugin)"
    assert "    sinks:     memory, terminal" in lines
    assert not any("ERROR" in line for line in lines)


def test_lists_plugins_with_their_sink_and_consumer_schemes(installed_plugins: Callable[..., None]) -> None:
    installed_plugins(entry_point("good", "tests.core.fake_plugins:GoodPlugin"))
    code, lines = run_plugins()
    assert code == 0
    good = lines.index("good  (tests.core.fake_plugins:GoodPlugin)")
    assert lines[good + 1 : good + 3] == ["    sinks:     myscheme", "    consumers: myscheme"]


def test_shows_a_broken_plugins_error_and_exits_1(installed_plugins: Callable[..., None]) -> None:
    installed_plugins(
        entry_point("broken", "tests.core.no_such_plugin_module"),
        entry_point("good", "tests.core.fake_plugins:GoodPlugin"),
    )
    with pytest.warns(RuntimeWarning, match="'broken'"):
        code, lines = run_plugins()
    assert code == 1
    broken = lines.index("broken  (tests.core.no_such_plugin_module)")
    assert lines[broken + 1].startswith("    ERROR: ModuleNotFoundError")
    assert "no_such_plugin_module" in lines[broken + 1]
    assert "    sinks:     myscheme" in lines  # the good plugin still loaded
    assert "    sinks:     memory, terminal" in lines
