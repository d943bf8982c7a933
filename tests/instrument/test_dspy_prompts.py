"""The offline server reads the prompts of the installed DSPy release correctly.

``streamll.testing.lm_server.prompt`` is the one place that knows DSPy's prompt wording. These
tests build real prompts with each DSPy adapter (no server, no LM call), read them back, and
check that a reply formatted for the detected adapter parses into the expected values. They run
in the DSPy version matrix (``nox -s dspy_matrix``), so a DSPy release that rewords its prompts
fails here first, naming the adapter and the reading that broke.
"""

from __future__ import annotations

from typing import Any, Literal

import dspy
import pytest
from streamll.testing.lm_server import ChatRequest, default_value, format_reply


class Survey(dspy.Signature):
    """Answer a question about a passage."""

    passage: str = dspy.InputField()
    question: str = dspy.InputField()
    reasoning: str = dspy.OutputField()
    answer: str = dspy.OutputField()
    count: int = dspy.OutputField()
    ratio: float = dspy.OutputField()
    flag: bool = dspy.OutputField()
    kind: Literal["fact", "opinion"] = dspy.OutputField()
    tags: list[str] = dspy.OutputField()


INPUTS = {"passage": "Paris is the capital of France.", "question": "What is the capital of France?"}
OUTPUTS = ["reasoning", "answer", "count", "ratio", "flag", "kind", "tags"]
ADAPTERS: dict[str, Any] = {"chat": dspy.ChatAdapter, "json": dspy.JSONAdapter, "xml": dspy.XMLAdapter}
EXPECTED_DEFAULTS = {"count": 42, "ratio": 3.14, "flag": True, "kind": "fact", "tags": ["alpha", "beta"]}


def _request(adapter_name: str, signature: type[dspy.Signature] = Survey) -> ChatRequest:
    """Build the prompt the named adapter sends for ``signature`` and read it back."""
    messages = ADAPTERS[adapter_name]().format(signature, demos=[], inputs=INPUTS)
    return ChatRequest.parse({"model": "offline", "messages": messages})


@pytest.mark.parametrize("adapter_name", sorted(ADAPTERS))
def test_the_adapter_its_output_fields_and_inputs_are_read(adapter_name: str) -> None:
    request = _request(adapter_name)
    assert request.adapter == adapter_name
    assert request.output_fields == OUTPUTS
    assert request.inputs == INPUTS
    assert request.question == INPUTS["question"]


@pytest.mark.parametrize("adapter_name", sorted(ADAPTERS))
def test_typed_fields_get_values_of_their_type(adapter_name: str) -> None:
    request = _request(adapter_name)
    values = {name: default_value(name, request) for name in EXPECTED_DEFAULTS}
    assert values == EXPECTED_DEFAULTS


@pytest.mark.parametrize("adapter_name", sorted(ADAPTERS))
def test_a_formatted_reply_parses_back_with_the_same_adapter(adapter_name: str) -> None:
    request = _request(adapter_name)
    values = {name: default_value(name, request) for name in OUTPUTS}
    parsed = ADAPTERS[adapter_name]().parse(Survey, format_reply(request, values))
    assert parsed == values


def test_a_string_signature_is_read_too() -> None:
    request = _request("chat", dspy.Signature("question -> summary, answer"))
    assert request.output_fields == ["summary", "answer"]
    assert request.inputs == {"question": INPUTS["question"]}
