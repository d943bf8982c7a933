"""Which SIGTERM handler a program ends up with once streamll starts a sink (a fresh interpreter each)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROGRAM = """
import signal, sys
if sys.argv[1] == "user":
    def mine(signum, frame):
        pass
    signal.signal(signal.SIGTERM, mine)
elif sys.argv[1] == "ignored":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
import streamll
streamll.configure(sinks=[streamll.MemorySink(), streamll.MemorySink()])
streamll.emit("custom", {"x": 1})
handler = signal.getsignal(signal.SIGTERM)
print(handler.name if isinstance(handler, signal.Handlers) else handler.__name__)
"""


@pytest.mark.parametrize(
    ("setup", "env", "handler", "warned"),
    [
        ("none", {}, "_drain_then_terminate", False),
        ("none", {"STREAMLL_HANDLE_SIGTERM": "0"}, "SIG_DFL", False),
        ("user", {}, "mine", True),
        ("ignored", {}, "SIG_IGN", False),
    ],
    ids=["default", "turned-off", "program-handler", "program-ignores"],
)
def test_streamll_installs_its_drain_only_where_sigterm_is_left_at_its_default(
    setup: str, env: dict[str, str], handler: str, warned: bool
) -> None:
    environment = {**os.environ, **env}
    environment.pop("STREAMLL_SINKS", None)
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, setup], capture_output=True, text=True, timeout=60, env=environment
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == handler
    assert done.stderr.count("streamll.flush(timeout=5)") == (1 if warned else 0), done.stderr
