"""The core README's offline example runs as written (a fresh interpreter, the real DSPy streaming path)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE_README = ROOT / "packages" / "streamll-core" / "README.md"


def python_block_after(heading: str, text: str) -> str:
    section = text.split(heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, f"no python block after {heading!r}"
    return match.group(1)


def test_the_offline_server_example_runs_as_written(tmp_path: Path) -> None:
    code = python_block_after("### Point DSPy at the offline server", CORE_README.read_text(encoding="utf-8"))
    script = tmp_path / "example.py"
    script.write_text(code + "\nprint('ok')\n", encoding="utf-8")
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("STREAMLL_SINKS", None)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
