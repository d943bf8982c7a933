"""Running the published streamll 0.1.1 (vendored wheel) in a subprocess next to this code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from email import message_from_bytes
from pathlib import Path
from typing import Any

from tests.helpers import skip_or_fail

V01_DIR = Path(__file__).parent / "v01"
WHEEL = V01_DIR / "streamll-0.1.1-py3-none-any.whl"


def extract(target: Path) -> Path:
    """Unpack the 0.1.1 wheel into ``target`` (a directory to put first on PYTHONPATH)."""
    with zipfile.ZipFile(WHEEL) as wheel:
        wheel.extractall(target)
    return target


def readme() -> str:
    """0.1.1's README, as published in the wheel's metadata."""
    with zipfile.ZipFile(WHEEL) as wheel:
        metadata = message_from_bytes(wheel.read("streamll-0.1.1.dist-info/METADATA"))
    body = metadata.get_payload()
    assert isinstance(body, str) and "## Quick start" in body
    return body


def require_faststream() -> None:
    """0.1.1 needs FastStream (its Redis transport); fail under CI, skip elsewhere when missing."""
    try:
        import faststream.redis  # noqa: F401
        import nanoid  # noqa: F401
    except ImportError as exc:
        skip_or_fail(f"streamll 0.1.1 needs faststream[redis] and nanoid in the test environment: {exc}")


def run_v01(site: Path, script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``tests/compat/v01/SCRIPT`` with 0.1.1 importable as ``streamll``."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    result = subprocess.run(
        [sys.executable, str(V01_DIR / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"0.1.1 {script} failed:\n{result.stderr[-4000:]}"
    return result


def printed_events(output: str) -> list[dict[str, Any]]:
    """The ``EVENT <json>`` lines of the 0.1.1 consumer."""
    return [json.loads(line[len("EVENT ") :]) for line in output.splitlines() if line.startswith("EVENT ")]
