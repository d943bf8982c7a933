"""Mutation testing of the hot path and the wire format with mutmut, one group of modules at a time.

mutmut mutates a copy of the sources and imports it from ``mutants/src``, so this
script stages the four packages in a ``src/`` layout under ``.mutation/`` (a copy,
made afresh each run), writes mutmut's configuration there and runs it for each
group: the group's modules are mutated, only the group's tests are run (and of
those, per mutant, only the tests that reach the mutated function).

Usage (``nox -s mutation -- ARGS`` passes ARGS here)::

    python tools/mutation.py                 # the bounded sample CI runs (wire format: a few minutes)
    python tools/mutation.py core sinks      # named groups
    python tools/mutation.py all             # every group (an hour or more on two cores)
    python tools/mutation.py --max-children 2 wire   # children side by side: only for groups of unit tests
    python tools/mutation.py --sample 60 sinks    # 60 mutants per module, drawn with a fixed seed (an estimate)
    python tools/mutation.py streaming --modules typed,frames   # only these modules of the group (file stems)
    python tools/mutation.py streaming --modules bridge --only '*LMSpan*'   # only mutants whose names match

Prints the score per module (killed or timed out / every mutant checked; a mutant
no test reaches counts as surviving) and the surviving mutants' names
(``cd .mutation/GROUP && mutmut show NAME`` shows one); writes ``.mutation/scores.json``.
Exit status 1 when a module of the run scores under ``--fail-under`` (default 0: report only).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import random
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / ".mutation"
PACKAGES = {
    "streamll": "packages/streamll-core/src/streamll",
    "streamll_redis": "packages/streamll-redis/src/streamll_redis",
    "streamll_nats": "packages/streamll-nats/src/streamll_nats",
    "streamll_kafka": "packages/streamll-kafka/src/streamll_kafka",
}


@dataclass(frozen=True)
class Group:
    """Modules mutated together and the tests that judge them."""

    modules: tuple[str, ...]
    tests: tuple[str, ...]


GROUPS = {
    "wire": Group(
        (
            "src/streamll/core/cloudevents.py",
            "src/streamll/core/serialization.py",
            "src/streamll/core/codec.py",
            "src/streamll/core/records.py",
        ),
        ("tests/test_wire_format.py", "tests/core/test_events.py", "tests/core/test_token_records.py"),
    ),
    "events": Group(
        ("src/streamll/core/events.py",),
        ("tests/test_wire_format.py", "tests/core/test_events.py", "tests/core/test_build_event.py"),
    ),
    "core": Group(
        (
            "src/streamll/core/context.py",
            "src/streamll/core/emitter.py",
            "src/streamll/core/spans.py",
            "src/streamll/core/runs.py",
            "src/streamll/core/policy.py",
        ),
        ("tests/core", "tests/compat", "tests/test_wire_format.py", "tests/instrument/test_lifecycle.py"),
    ),
    "sinks": Group(
        (
            "src/streamll/sinks/base.py",
            "src/streamll/sinks/state.py",
            "src/streamll/sinks/buffer.py",
            "src/streamll/sinks/loop.py",
            "src/streamll/sinks/overflow.py",
            "src/streamll/sinks/results.py",
            "src/streamll/sinks/worker.py",
            "src/streamll/sinks/spill.py",
        ),
        ("tests/core", "tests/compat"),
    ),
    "streaming": Group(
        ("src/streamll/streaming/*.py",), ("tests/instrument", "tests/fidelity", "tests/core/test_token_records.py")
    ),
    "consumer": Group(
        ("src/streamll/consumer.py",),
        (
            "tests/core/test_consumer_base.py",
            "tests/core/test_consumer_lifecycle.py",
            "tests/core/test_consumer_waiting.py",
            "tests/core/test_plugins.py",
            "tests/core/test_decoder_fuzz.py",
        ),
    ),
    "redis": Group(
        ("src/streamll_redis/sink.py", "src/streamll_redis/consumer.py"),
        (
            "tests/redis/test_sink.py",
            "tests/redis/test_consumer.py",
            "tests/redis/test_contract.py",
            "tests/redis/test_outage.py",
            "tests/redis/test_url.py",
            "tests/redis/test_tls.py",
            "tests/redis/test_sink_options.py",
            "tests/redis/test_consumer_recovery.py",
        ),
    ),
    "nats": Group(
        ("src/streamll_nats/sink.py", "src/streamll_nats/consumer.py"),
        (
            "tests/nats/test_sink.py",
            "tests/nats/test_consumer.py",
            "tests/nats/test_contract.py",
            "tests/nats/test_outage.py",
            "tests/nats/test_url.py",
            "tests/nats/test_stream.py",
            "tests/nats/test_sink_limits.py",
            "tests/nats/test_consumer_options.py",
            "tests/nats/test_consumer_server_side.py",
        ),
    ),
    "kafka": Group(
        ("src/streamll_kafka/sink.py", "src/streamll_kafka/consumer.py"),
        (
            "tests/kafka/test_sink.py",
            "tests/kafka/test_consumer.py",
            "tests/kafka/test_contract.py",
            "tests/kafka/test_outage.py",
            "tests/kafka/test_options.py",
            "tests/kafka/test_acks_and_keys.py",
            "tests/kafka/test_failures.py",
            "tests/kafka/test_group_changes.py",
            "tests/kafka/test_event_consumer.py",
        ),
    ),
}
SAMPLE = ("wire",)
"""What CI runs: the wire format (CloudEvents mapping, serialization), a few minutes on two cores."""
KILLED, SURVIVED, TIMEOUT = "killed", "survived", "timeout"
ONE_CHILD = (
    "mutants tested side by side (default 1: children forked from one test session share its DSPy disk cache and "
    "the brokers; a test one child disturbs in another fails, and mutmut files that as a kill)"
)
SEED = 16


def stage(name: str, group: Group, max_children: int) -> Path:
    """A fresh ``.mutation/NAME`` with the packages under ``src/``, the tests, and mutmut's configuration."""
    where = STAGE / name
    shutil.rmtree(where, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package, source in PACKAGES.items():
        shutil.copytree(ROOT / source, where / "src" / package, ignore=ignore)
    shutil.copytree(ROOT / "tests", where / "tests", ignore=ignore)
    shutil.copytree(ROOT / "docs", where / "docs", ignore=ignore)
    pytest_options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    config = {
        "tool": {
            "pytest": {"ini_options": pytest_options},
            "mutmut": {
                "source_paths": ["src"],
                "only_mutate": list(group.modules),
                "also_copy": ["docs"],
                "pytest_add_cli_args": ["-p", "no:cacheprovider", "-q", "-x", "-m", "not slow"],
                "pytest_add_cli_args_test_selection": list(group.tests),
                "process_isolation": "forkserver",
                "timeout_multiplier": 5.0,
                "timeout_constant": 10.0,
                "use_git_change_detection": False,
            },
        }
    }
    (where / "pyproject.toml").write_text(to_toml(config))
    return where


def restrict(group: Group, stems: list[str]) -> Group:
    """The group with only the modules named by file stem (``typed`` for ``.../streaming/typed.py``); same tests."""
    chosen = []
    for stem in stems:
        paths = [f"{pattern.rsplit('/', 1)[0]}/{stem}.py" for pattern in group.modules]
        found = [path for path, pattern in zip(paths, group.modules, strict=True) if fnmatch.fnmatch(path, pattern)]
        found = [path for path in found if source_of(path).exists()]
        if not found:
            raise ValueError(f"no module {stem!r} in {', '.join(group.modules)}")
        chosen += found
    return Group(tuple(chosen), group.tests)


def source_of(staged: str) -> Path:
    """The source file a staged ``src/PACKAGE/...`` path is copied from."""
    package, _, rest = staged.removeprefix("src/").partition("/")
    return ROOT / PACKAGES[package] / rest


def to_toml(config: dict[str, object], prefix: str = "") -> str:
    """Just enough TOML for the configuration above (tables of strings, numbers, booleans and lists)."""
    scalars, tables = [], []
    for key, value in config.items():
        if isinstance(value, dict):
            tables.append(to_toml(value, f"{prefix}{key}."))
        else:
            scalars.append(f"{key} = {json.dumps(value)}")
    head = [f"[{prefix[:-1]}]"] if prefix and scalars else []
    return "\n".join(head + scalars + [""] + tables)


SPINNER = re.compile("[\u2800-\u28ff]")
PROGRESS = re.compile(r"^(\d+)/(\d+) ")


def run_quietly(command: list[str], where: Path) -> None:
    """Run mutmut, printing each phase's final state instead of every frame of its spinner."""
    with subprocess.Popen(command, cwd=where, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as run:
        assert run.stdout is not None
        last = ""
        for line in run.stdout:
            frames = [frame.strip() for frame in SPINNER.split(line.replace("\r", "")) if frame.strip()]
            progress = PROGRESS.match(frames[-1]) if frames else None
            if (
                frames
                and frames[-1] != last
                and (progress is None or int(progress[1]) % 100 == 0 or progress[1] == progress[2])
            ):
                print(frames[-1], flush=True)
                last = frames[-1]


def sample(where: Path, per_module: int) -> list[str]:
    """Up to ``per_module`` mutant names of each mutated module, drawn with a fixed seed (the same draw every run)."""
    chosen: list[str] = []
    for meta in sorted((where / "mutants").rglob("*.py.meta")):
        names = sorted(json.loads(meta.read_text()).get("exit_code_by_key", {}))
        chosen += sorted(random.Random(SEED).sample(names, min(per_module, len(names))))
    return chosen


def scores(where: Path) -> dict[str, dict[str, object]]:
    """Per mutated module: counts by status and the surviving mutants' names."""
    out: dict[str, dict[str, object]] = {}
    for meta in sorted((where / "mutants").rglob("*.py.meta")):
        module = str(meta.relative_to(where / "mutants")).removesuffix(".meta")
        results = json.loads(meta.read_text()).get("exit_code_by_key", {})
        counts: dict[str, int] = {}
        survivors = []
        results = {mutant: code for mutant, code in results.items() if code is not None}  # sampled runs
        for mutant, code in results.items():
            status = status_of(code)
            counts[status] = counts.get(status, 0) + 1
            if status not in (KILLED, TIMEOUT):
                survivors.append(f"{mutant} ({status})")
        judged = len(results)  # a mutant no test reaches ("no tests") counts as surviving
        killed = counts.get(KILLED, 0) + counts.get(TIMEOUT, 0)
        out[module] = {
            "mutants": len(results),
            "generated": len(json.loads(meta.read_text()).get("exit_code_by_key", {})),
            "counts": counts,
            "score": round(100 * killed / judged, 1) if judged else None,
            "not_killed": sorted(survivors),
        }
    return out


def status_of(code: int | None) -> str:
    """mutmut's exit-code convention (mutmut.stats.status_by_exit_code)."""
    known = {1: KILLED, 3: KILLED, 0: SURVIVED, 5: "no tests", 33: "no tests", 34: "skipped", 36: TIMEOUT}
    known |= {24: TIMEOUT, -24: TIMEOUT, 152: TIMEOUT, 255: TIMEOUT, None: "not checked", 37: "type check"}
    return known.get(code, "suspicious")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="*", help=f"groups to run: {', '.join(GROUPS)}, or all (default: the sample)")
    parser.add_argument("--max-children", type=int, default=1, help=ONE_CHILD)
    parser.add_argument("--sample", type=int, default=0, help="check only N mutants per module, drawn at random")
    parser.add_argument("--modules", default="", help="only these modules of each group, by file stem: typed,frames")
    parser.add_argument("--only", default="", help="only mutants whose names match: '*LMSpan*_close*,*_open*'")
    parser.add_argument("--fail-under", type=float, default=0.0, help="fail when a module scores below this (%%)")
    args = parser.parse_args(argv)
    names = list(GROUPS) if args.groups == ["all"] else (args.groups or list(SAMPLE))
    unknown = [name for name in names if name not in GROUPS]
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; known: {', '.join(GROUPS)}")
    summary: dict[str, object] = {}
    failed = False
    groups = {name: GROUPS[name] for name in names}
    if args.modules:
        try:
            groups = {name: restrict(group, args.modules.split(",")) for name, group in groups.items()}
        except ValueError as error:
            parser.error(str(error))
    for name, group in groups.items():
        where = stage(f"{name}-{args.modules.replace(',', '-')}" if args.modules else name, group, args.max_children)
        print(f"== mutation group {name}: {', '.join(group.modules)}", flush=True)
        command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children)]
        if args.sample or args.only:
            # a name no mutant has: mutmut generates the mutants and the test map, then stops (with a traceback)
            subprocess.run([*command, "no-mutant-is-named-this"], cwd=where, capture_output=True, check=False)
            chosen = sample(where, args.sample or sys.maxsize)
            patterns = args.only.split(",") if args.only else ["*"]
            chosen = [mutant for mutant in chosen if any(fnmatch.fnmatchcase(mutant, each) for each in patterns)]
            print(f"chose {len(chosen)} mutants (sample {args.sample or 'all'}, names {args.only or '*'})", flush=True)
            command += chosen
        run_quietly(command, where)
        for module, result in scores(where).items():
            summary[module] = {"group": name, **result}
            checked = f"{result['mutants']} of {result['generated']}"
            print(f"{module}: {result['score']}% killed of {checked} mutants {result['counts']}")
            for survivor in result["not_killed"]:  # type: ignore[attr-defined]
                print(f"    not killed: {survivor}")
            timeouts = result["counts"].get(TIMEOUT, 0)  # type: ignore[attr-defined]
            if timeouts * 4 > result["mutants"]:  # type: ignore[operator]
                print(f"    warning: {timeouts} timeouts (mutmut also files a crashed test run as one); check by hand")
            score = result["score"]
            failed |= score is not None and score < args.fail_under  # type: ignore[operator]
    STAGE.mkdir(exist_ok=True)
    summary_path = STAGE / "scores.json"  # read again now: runs side by side each add their modules
    summary = (json.loads(summary_path.read_text()) if summary_path.exists() else {}) | summary
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
