"""Every example in docs/streaming-agents.md runs as written and prints what the page shows."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import streamll

DOC = Path(__file__).resolve().parents[2] / "docs" / "streaming-agents.md"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


@pytest.fixture
def restore_configuration() -> Iterator[None]:
    yield
    streamll.configure(sinks=None)


def test_the_examples_print_what_the_page_shows(restore_configuration: None) -> None:
    react, native = (block for block in blocks("python") if "OfflineLMServer(responder=" in block)
    react_output, native_output = blocks("text")
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    for code, expected in ((react, react_output), (native, native_output)):
        printed = io.StringIO()
        with redirect_stdout(printed):
            exec(compile(code, str(DOC), "exec", dont_inherit=True), namespace)  # no __future__ of this file
        assert printed.getvalue() == expected


def test_the_status_snippet_names_a_real_option() -> None:
    (snippet,) = (block for block in blocks("python") if "status_messages=" in block and "class" not in block)
    assert "status_messages=MyProvider()" in snippet
    streamll.instrument(stream_fields=["answer"], status_messages=False)  # the option exists as documented
