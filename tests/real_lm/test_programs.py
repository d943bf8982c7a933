"""ChainOfThought and a custom multi-field signature on the Chat and JSON adapters, real model.

Differential: the same program with and without ``@streamll.instrument`` gives the same
prediction, and what streamed for each field joins to exactly the parsed value.

llama.cpp reuses the KV cache of the previous request; a prompt evaluated from a cold
cache can decode differently from one served from its own cache. Each comparison
therefore runs after one warm-up call of the same prompt, so both runs decode alike.
"""

from __future__ import annotations

from typing import Any, Literal

import dspy
import pytest
import streamll
from streamll import MemorySink

ADAPTERS = {"chat": dspy.ChatAdapter, "json": dspy.JSONAdapter}


class Review(dspy.Signature):
    """Review the product description: summarise it, judge its tone, score it, list keywords."""

    description: str = dspy.InputField()
    summary: str = dspy.OutputField()
    tone: Literal["positive", "negative", "neutral"] = dspy.OutputField()
    score: int = dspy.OutputField(desc="1 to 10")
    keywords: list[str] = dspy.OutputField()


def chain_of_thought() -> type[dspy.Module]:
    class Reasoning(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cot = dspy.ChainOfThought("question -> answer")

        def forward(self, question: str) -> dspy.Prediction:
            return self.cot(question=question)

    return Reasoning


def review() -> type[dspy.Module]:
    class Reviewer(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict(Review)

        def forward(self, description: str) -> dspy.Prediction:
            return self.predict(description=description)

    return Reviewer


PROGRAMS: dict[str, tuple[Any, dict[str, str], list[str]]] = {
    "chain_of_thought": (chain_of_thought, {"question": "Why does ice float on water?"}, ["reasoning", "answer"]),
    "custom_signature": (
        review,
        {"description": "A light, waterproof jacket with deep pockets. Café-tested in the rain: still dry."},
        ["summary", "tone"],
    ),
}


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_instrumented_program_predicts_what_the_plain_one_does(
    local_model: Any, memory_sink: MemorySink, program: str, adapter: str
) -> None:
    factory, inputs, fields = PROGRAMS[program]
    plain = factory()
    instrumented = streamll.instrument(stream_fields=fields)(factory())
    lm = local_model.lm()
    with dspy.context(lm=lm, adapter=ADAPTERS[adapter]()):
        plain()(**inputs)  # warm-up: the next two calls find this prompt in llama.cpp's cache
        streamed = instrumented()(**inputs)
        expected = plain()(**inputs)
    assert streamed.toDict() == expected.toDict()
    instrumented_call, plain_call = lm.history[-2], lm.history[-1]
    for key in ("messages", "outputs", "usage"):
        assert instrumented_call[key] == plain_call[key], key
    assert streamll.flush(30)
    for name in fields:
        tokens = memory_sink.tokens(name)
        assert tokens, f"nothing streamed for {name!r}"
        assert memory_sink.text(name) == streamed[name], name
    if program == "custom_signature":
        assert streamed.tone in ("positive", "negative", "neutral")
        assert isinstance(streamed.score, int) and isinstance(streamed.keywords, list)


async def test_async_program_predicts_what_the_plain_one_does(local_model: Any, memory_sink: MemorySink) -> None:
    class Answer(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.predict = dspy.Predict("question -> answer")

        async def aforward(self, question: str) -> dspy.Prediction:
            return await self.predict.acall(question=question)

    instrumented = streamll.instrument(stream_fields=["answer"])(type("Answer", (Answer,), {}))
    question = "Où se trouve la tour Eiffel ?"
    with dspy.context(lm=local_model.lm(), adapter=dspy.ChatAdapter()):
        await Answer().acall(question=question)  # warm-up
        streamed = await instrumented().acall(question=question)
        expected = await Answer().acall(question=question)
    assert streamed.toDict() == expected.toDict()
    assert streamll.flush(30)
    assert memory_sink.tokens("answer")
    assert memory_sink.text("answer") == streamed.answer
