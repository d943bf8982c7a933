"""`pip install streamll[redis]` gives core plus the Redis plugin, found through its entry point."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ("redis", "nats", "kafka")


def project(path: Path) -> dict:
    return tomllib.loads((path / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_meta_package_extras_name_the_sibling_distributions() -> None:
    root = project(ROOT)
    version = root["version"]
    assert root["name"] == "streamll"
    assert root["dependencies"] == [f"streamll-core=={version}"]
    extras = root["optional-dependencies"]
    for name in PLUGINS:
        plugin = project(ROOT / "packages" / f"streamll-{name}")
        assert plugin["name"] == f"streamll-{name}" and plugin["version"] == version
        assert extras[name] == [f"streamll-{name}=={version}"]
        assert f"streamll-core=={version}" in plugin["dependencies"]
        assert plugin["entry-points"]["streamll"] == {name: f"streamll_{name}.plugin"}
    assert sorted(extras["all"]) == sorted(f"streamll-{name}=={version}" for name in PLUGINS)
    assert project(ROOT / "packages" / "streamll-core")["version"] == version


def uv() -> list[str]:
    if shutil.which("uv"):
        return ["uv"]
    try:
        import uv as _uv  # noqa: F401
    except ImportError:
        pytest.fail("uv is needed to build and install the distributions (it is a test dependency)")
    return [sys.executable, "-m", "uv"]


def run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=300).stdout


def test_installing_the_redis_extra_brings_core_and_the_redis_plugin_only(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    for source in (ROOT, ROOT / "packages" / "streamll-core", ROOT / "packages" / "streamll-redis"):
        run(*uv(), "build", "--quiet", "--wheel", "--out-dir", str(dist), str(source))
    core_wheel = next(dist.glob("streamll_core-*.whl"))
    assert "streamll/schema/event.v1.json" in zipfile.ZipFile(core_wheel).namelist()
    venv = tmp_path / "venv"
    run(*uv(), "venv", "--quiet", str(venv))
    python = str(venv / "bin" / "python")
    run(*uv(), "pip", "install", "--quiet", "--python", python, "--find-links", str(dist), "streamll[redis]==0.2.0")
    probe = (
        "import importlib.util, streamll.plugins as p;"
        "from streamll.consumer import RedisStreamConsumer;"
        "print(sorted(p.sink_schemes()), importlib.util.find_spec('streamll_nats') is None)"
    )
    assert run(python, "-c", probe).strip() == "['memory', 'redis', 'rediss', 'terminal', 'unix'] True"
    listing = run(str(venv / "bin" / "streamll"), "plugins")
    assert "redis 0.2.0" in listing and "ERROR" not in listing


def test_requirements_txt_names_every_package_of_the_checkout() -> None:
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    entries = [line for line in lines if line and not line.startswith("#")]
    packages = sorted(path.name for path in (ROOT / "packages").iterdir() if (path / "pyproject.toml").exists())
    assert entries[0] == "-e ./packages/streamll-core" and entries[-1] == "-e .[all]"
    assert sorted(entries[1:-1]) == [f"-e ./packages/{name}" for name in packages if name != "streamll-core"]


def test_plain_pip_installs_the_checkout_with_the_readme_command(tmp_path: Path) -> None:
    """The README's clone install, with plain pip and no package index, in a fresh environment.

    Third-party dependencies are put there first (by uv, from its cache, to keep this fast); then
    pip alone must resolve the pinned streamll-core / plugins from the checkout, which
    ``pip install -e '.[all]'`` by itself cannot do.
    """
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = next(line for line in readme.splitlines() if line.startswith("python -m pip install -r "))
    assert command == "python -m pip install -r requirements.txt"
    venv = tmp_path / "venv"
    run(*uv(), "venv", "--quiet", "--seed", str(venv))
    python = str(venv / "bin" / "python")
    third_party = ["hatchling>=1.24", "editables"]
    for source in (ROOT / "packages").iterdir():
        if (source / "pyproject.toml").exists():
            third_party += [dep for dep in project(source)["dependencies"] if not dep.startswith("streamll")]
    run(*uv(), "pip", "install", "--quiet", "--python", python, *third_party)

    alone = subprocess.run(
        [python, "-m", "pip", "install", "--no-index", "--no-build-isolation", "-e", ".[all]"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert alone.returncode != 0 and "streamll-core==0.2.0" in alone.stderr, "the README's explanation no longer holds"

    installed = subprocess.run(
        [python, "-m", "pip", "install", "--no-index", "--no-build-isolation", "-r", "requirements.txt"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    listing = run(str(venv / "bin" / "streamll"), "plugins")
    for name in PLUGINS:
        assert f"{name} 0.2.0" in listing
    assert "ERROR" not in listing
