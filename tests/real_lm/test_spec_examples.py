"""Every example of docs/token-streaming.md, run as written against the real model.

A real tokenizer decides the token boundaries, whitespace and Unicode here: what streams
for a field must join to exactly the value DSPy parsed.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from typing import Any

import dspy
import pytest
import streamll
from streamll import MemorySink

from tests.instrument.test_spec_examples import block_with, run_block


def forward_with(attribute: str) -> Any:
    """The forward the documented classes leave to the reader."""

    def forward(self: Any, question: str) -> dspy.Prediction:
        return getattr(self, attribute)(question=question)

    return forward


def assert_streamed(sink: MemorySink, prediction: dspy.Prediction, *fields: str) -> None:
    assert streamll.flush(30)
    for name in fields:
        tokens = sink.tokens(name)
        assert tokens, f"no tokens for {name!r}"
        assert sink.text(name) == prediction[name], name
        assert [t.token_index for t in tokens] == list(range(len(tokens)))
        assert tokens[-1].finish_reason is not None


def test_quick_start(real_lm: Any, memory_sink: MemorySink) -> None:
    result = run_block(block_with("qa = SimpleQA()"))["result"]
    assert result.answer.strip()
    assert_streamed(memory_sink, result, "answer")
    assert len(memory_sink.tokens("answer")) > 1, "a real model streams more than one token"


def test_quick_start_terminal_lines_rebuild_the_answer(real_lm: Any) -> None:
    streamll.configure(sinks=None)
    output = io.StringIO()
    with redirect_stdout(output):
        result = run_block(block_with("qa = SimpleQA()"))["result"]
        assert streamll.flush(30)
    lines = [line for line in output.getvalue().splitlines() if line.startswith('[TOKEN] answer: "')]
    assert "".join(json.loads(line.split(": ", 1)[1]) for line in lines) == result.answer


def test_predict_example(real_lm: Any, memory_sink: MemorySink) -> None:
    module_class = run_block(block_with("class QA(dspy.Module)"))["QA"]
    module_class.forward = forward_with("predict")
    prediction = module_class()(question="What is the capital of France?")
    assert_streamed(memory_sink, prediction, "answer")


@pytest.mark.parametrize("variant", ["both", "answer_only"])
def test_chain_of_thought_examples(real_lm: Any, memory_sink: MemorySink, variant: str) -> None:
    both, answer_only = block_with("# Stream both reasoning and answer").split("# Stream only the final answer")
    module_class = run_block(both if variant == "both" else answer_only)["ReasoningQA"]
    module_class.forward = forward_with("cot")
    prediction = module_class()(question="Why is the sky blue?")
    expected = ["reasoning", "answer"] if variant == "both" else ["answer"]
    assert {t.field for t in memory_sink.tokens()} <= set(expected)
    assert_streamed(memory_sink, prediction, *expected)


def test_custom_signature_example(real_lm: Any, memory_sink: MemorySink) -> None:
    module_class = run_block(block_with("class QASignature(dspy.Signature)"))["QAModule"]
    module_class.forward = forward_with("predict")
    prediction = module_class()(question="Why do leaves change colour in autumn?")
    assert_streamed(memory_sink, prediction, "analysis", "answer")


def test_custom_sink_example(real_lm: Any) -> None:
    collector = run_block(block_with("class TokenCollector(BaseSink)"))["TokenCollector"]()
    streamll.configure(sinks=[collector])
    try:
        qa_class = run_block(block_with("qa = SimpleQA()").split("qa = SimpleQA()")[0])["SimpleQA"]
        output = io.StringIO()
        with redirect_stdout(output):
            result = qa_class()("Name a primary colour.")
            assert streamll.flush(30)
        assert collector.get_text("answer") == result.answer
        first = collector.tokens[0]
        assert f"Token #0: {first.token}" in output.getvalue()
    finally:
        streamll.configure(sinks=None)
        collector.stop()


def test_dynamic_streaming_example(real_lm: Any, memory_sink: MemorySink) -> None:
    module = run_block(block_with("class AdaptiveStreaming"))["AdaptiveStreaming"]()
    module(question="Hi?")
    assert streamll.flush(30)
    assert memory_sink.tokens() == []
    prediction = module(question="Which gas do plants take in from the air, and which gas do they give off?")
    assert_streamed(memory_sink, prediction, "answer")
