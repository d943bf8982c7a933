"""Every example in docs/fields.md runs as written and prints what its comments say."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import streamll

DOC = Path(__file__).resolve().parents[2] / "docs" / "fields.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
PRINT_RE = re.compile(r"^print\(.*\)  # (.*)$", re.MULTILINE)
TERMINAL_RE = re.compile(r"^\[[A-Z]+\] ")
"""Lines of the terminal sink (``[TOKEN] answer: ...``), should one print."""


@pytest.fixture(autouse=True)
def restore_configuration() -> Iterator[None]:
    yield
    streamll.configure(sinks=None)


def expected_lines(block: str) -> list[re.Pattern[str]]:
    """The comment of each ``print(...)  # ...`` line, ``...`` standing for any text."""
    return [re.compile(".*".join(map(re.escape, comment.split("..."))) + "$") for comment in PRINT_RE.findall(block)]


def test_the_page_has_its_four_examples() -> None:
    assert len(BLOCKS) == 4
    assert all(expected_lines(block) for block in BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_an_example_prints_what_it_says(index: int) -> None:
    block = BLOCKS[index]
    output = io.StringIO()
    with redirect_stdout(output):
        exec(compile(block, f"{DOC}:block{index}", "exec"), {"__name__": "__doc_example__"})
    printed = [line for line in output.getvalue().splitlines() if not TERMINAL_RE.match(line)]
    expected = expected_lines(block)
    assert len(printed) == len(expected), printed
    for line, pattern in zip(printed, expected, strict=True):
        assert pattern.match(line), f"{line!r} does not match the documented {pattern.pattern!r}"
