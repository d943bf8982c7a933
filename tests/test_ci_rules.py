"""Rules for the suite itself: under CI=true nothing skips (unless allowed, with a reason); DSPy's cache is private."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import pytest
from tests.helpers import allowed_skip, require_module, skip_or_fail


def test_plain_skip():
    pytest.skip("no openssl here")


@pytest.mark.skipif(True, reason="a marker skip")
def test_marker_skip():
    pass


def test_missing_module():
    require_module("streamll_no_such_module")


def test_missing_tool():
    skip_or_fail("no such tool")


def test_allowed():
    allowed_skip("this DSPy line has no LocalInterpreter")


@pytest.mark.xfail(strict=True, reason="a known difference")
def test_known_difference():
    raise AssertionError
"""
MODULE_SKIP = 'import pytest\npytest.importorskip("streamll_no_such_module")\n\ndef test_never():\n    pass\n'
CONFTEST = "from tests.conftest import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401\n"


def run_probe(tmp_path: Path, ci: str | None, name: str, source: str) -> str:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / name).write_text(source)
    env = {key: value for key, value in os.environ.items() if key not in ("CI", "STREAMLL_REQUIRE_BROKERS")}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", name]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    return done.stdout


def test_under_ci_every_skip_fails_except_the_allowed_ones(tmp_path: Path) -> None:
    out = run_probe(tmp_path, "true", "test_probe.py", PROBE)
    for name in ("test_plain_skip", "test_missing_module", "test_missing_tool"):
        assert f"FAILED test_probe.py::{name}" in out, out
    assert "ERROR test_probe.py::test_marker_skip - skipped under CI=true" in out, out  # a setup-time skip
    assert "allowed in CI: this DSPy line has no LocalInterpreter" in out, out
    assert "XFAIL test_probe.py::test_known_difference" in out, out
    assert "3 failed, 1 skipped, 1 xfailed, 1 error" in out, out


def test_under_ci_a_module_skipped_at_import_fails(tmp_path: Path) -> None:
    out = run_probe(tmp_path, "true", "test_module_skip.py", MODULE_SKIP)
    assert "ERROR test_module_skip.py - module skipped under CI=true" in out, out


@pytest.mark.parametrize("ci", [None, "false"])
def test_outside_ci_they_skip(tmp_path: Path, ci: str | None) -> None:
    out = run_probe(tmp_path, ci, "test_probe.py", PROBE)
    assert "5 skipped, 1 xfailed in" in out, out
    out = run_probe(tmp_path, ci, "test_module_skip.py", MODULE_SKIP)
    assert "1 skipped in" in out, out


def test_dspys_disk_cache_is_private_to_the_run() -> None:
    import dspy
    from dspy.utils.caching import DSPY_CACHEDIR

    private = os.environ["DSPY_CACHEDIR"]
    assert Path(private).name.startswith("streamll-tests-dspy-cache-") and Path(private).is_dir()
    assert private == DSPY_CACHEDIR
    directory = getattr(getattr(dspy.cache, "disk_cache", None), "directory", private)
    assert str(directory).startswith(private)
