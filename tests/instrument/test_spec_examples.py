"""Every example in docs/token-streaming.md runs exactly as written.

The code blocks are read from the document itself, so the docs cannot drift
from what works. (The consumer example needs Redis: tests/redis covers it.)
"""

from __future__ import annotations

import ast
import io
import re
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import dspy
import pytest
import streamll
from streamll import MemorySink
from streamll.testing import OfflineLMServer

from tests.helpers import allowed_skip

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "token-streaming.md"
SHARED_SPEC = ROOT.parent / "shared" / "spec" / "token-streaming.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


def block_with(marker: str) -> str:
    matches = [block for block in python_blocks() if marker in block]
    assert len(matches) == 1, f"expected one python block containing {marker!r}"
    return matches[0]


def run_block(code: str, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run a documented block with the Quick Start's imports in scope, as a reader has them."""
    namespace = namespace if namespace is not None else {"streamll": streamll, "dspy": dspy}
    exec(compile(code, str(DOC), "exec"), namespace)
    return namespace


def test_docs_copy_is_the_users_spec() -> None:
    if not SHARED_SPEC.exists():
        allowed_skip("the shared spec (outside this repository) is not checked out beside it")
    assert DOC.read_text(encoding="utf-8") == SHARED_SPEC.read_text(encoding="utf-8")


def test_every_python_block_is_valid_python() -> None:
    for block in python_blocks():
        ast.parse(block, feature_version=(3, 11)) if "await " not in block else compile(
            block, str(DOC), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        )


@pytest.fixture
def configured_lm(server: OfflineLMServer) -> Any:
    """What a user does before the examples: configure an LM (here the offline server)."""
    with dspy.context(lm=server.lm(), adapter=dspy.ChatAdapter()):
        yield


def test_quick_start(configured_lm: Any, memory_sink: MemorySink) -> None:
    namespace = run_block(block_with("qa = SimpleQA()"))
    result = namespace["result"]
    assert streamll.flush(10)
    assert memory_sink.text("answer") == result.answer == "Machine learning is a subset of artificial intelligence."
    assert [t.token for t in memory_sink.tokens("answer")][:3] == ["Machine", " learning", " is"]


def test_quick_start_default_terminal_output(configured_lm: Any) -> None:
    """With no sink configured, the terminal shows `[TOKEN] answer: "Machine"` lines, as documented."""
    streamll.configure(sinks=None)
    output = io.StringIO()
    with redirect_stdout(output):
        run_block(block_with("qa = SimpleQA()"))
        assert streamll.flush(10)
    lines = [line for line in output.getvalue().splitlines() if line.startswith("[TOKEN]")]
    assert lines[:5] == [
        '[TOKEN] answer: "Machine"',
        '[TOKEN] answer: " learning"',
        '[TOKEN] answer: " is"',
        '[TOKEN] answer: " a"',
        '[TOKEN] answer: " subset"',
    ]


def test_predict_example(configured_lm: Any, memory_sink: MemorySink) -> None:
    module_class = run_block(block_with("class QA(dspy.Module)"))["QA"]

    def forward(self: Any, question: str) -> dspy.Prediction:
        return self.predict(question=question)

    module_class.forward = forward  # the example leaves forward to the reader (and skips super().__init__())
    prediction = module_class()(question="What is ML?")
    assert streamll.flush(10)
    assert memory_sink.text("answer") == prediction.answer


def test_chain_of_thought_examples(configured_lm: Any, memory_sink: MemorySink) -> None:
    code = block_with("# Stream both reasoning and answer")
    both, answer_only = code.split("# Stream only the final answer")
    for source, expected in ((both, {"reasoning", "answer"}), (answer_only, {"answer"})):
        memory_sink.clear()
        module_class = run_block(source)["ReasoningQA"]

        def forward(self: Any, question: str) -> dspy.Prediction:
            return self.cot(question=question)

        module_class.forward = forward  # the documented classes leave forward to the reader
        prediction = module_class()(question="What is ML?")
        assert streamll.flush(10)
        assert {t.field for t in memory_sink.tokens()} == expected
        for name in expected:
            assert memory_sink.text(name) == prediction[name]


def test_custom_signature_example(configured_lm: Any, memory_sink: MemorySink) -> None:
    namespace = run_block(block_with("class QASignature(dspy.Signature)"))
    module_class = namespace["QAModule"]

    def forward(self: Any, question: str) -> dspy.Prediction:
        return self.predict(question=question)

    module_class.forward = forward
    prediction = module_class()(question="Why is the sky blue?")
    assert streamll.flush(10)
    assert memory_sink.text("analysis") == prediction.analysis
    assert memory_sink.text("answer") == prediction.answer


def test_custom_sink_example(configured_lm: Any, server: OfflineLMServer) -> None:
    namespace = run_block(block_with("class TokenCollector(BaseSink)"))
    collector = namespace["TokenCollector"]()
    streamll.configure(sinks=[collector])
    try:
        qa_class = run_block(block_with("qa = SimpleQA()").split("qa = SimpleQA()")[0])["SimpleQA"]
        output = io.StringIO()
        with redirect_stdout(output):
            result = qa_class()("What is machine learning?")
            assert streamll.flush(10)
        assert collector.get_text("answer") == result.answer
        assert collector.get_text() == result.answer
        assert "Token #0: Machine" in output.getvalue()
    finally:
        streamll.configure(sinks=None)
        collector.stop()


def test_dynamic_streaming_example(configured_lm: Any, memory_sink: MemorySink) -> None:
    module = run_block(block_with("class AdaptiveStreaming"))["AdaptiveStreaming"]()
    module(question="short")
    assert streamll.flush(10)
    assert memory_sink.tokens() == []
    prediction = module(question="x" * 60)
    assert streamll.flush(10)
    assert memory_sink.text("answer") == prediction.answer


def test_troubleshooting_examples(capsys: pytest.CaptureFixture[str]) -> None:
    run_block(block_with("Check what fields you can stream"))
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["dict_keys(['answer'])", "dict_keys(['reasoning', 'answer'])"]
    sink = MemorySink()
    sink.start()  # "Check that sink is started: sink.start()"
    assert sink.is_running
    sink.stop()
