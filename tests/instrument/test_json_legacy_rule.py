"""The JSON parser's legacy rule (DSPy before 3.1 or so) against that DSPy's own reading of a reply.

The default suite runs the newest DSPy, whose JSONAdapter no longer cuts a reply at its first
balanced ``{...}``; the reference is the older ``JSONAdapter.parse`` (see ``legacy_adapters``).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from streamll.streaming import json_parser
from streamll.streaming.parsers import JSONParser

from .legacy_adapters import assert_streams_as_legacy, legacy_value
from .test_parsers import FIELDS, stream_text
from .test_parsers_edges import ops_of
from .test_parsers_fuzz import FUZZ, TEXT, cuts

LEGACY_REPLIES = [
    '}{"reasoning": "r", "answer": "x}"}',  # a brace before the object is not counted
    'Sure } {"reasoning": "r", "answer": "a } b"}',
    '{"reasoning": "XX { X", "answer": "X}X"}',  # only braces count
    '{"reasoning": "r", "answer": "x \\}"}',  # the cut inside an escape keeps it as written
    '{"reasoning": "r", "answer": "x \\u12}"}',
    '{"reasoning": "r", "answer": "x \\ud83d}"}',  # a high surrogate waiting for its low half stays
    '{"reasoning": "r", "answer": "trailing space  }"}',
    '{"reasoning": "a { b } c", "answer": "x }  tail", "more": 1}',
    '{"reasoning": "r", "answer": "a", "extra": {"b": "}}"}}',  # braces of a raw value are counted too
    '{"reasoning": "\\q", "answer": "not JSON \\n}"}',
]


@pytest.mark.parametrize("reply", LEGACY_REPLIES)
def test_legacy_rule_streams_what_a_legacy_dspy_reads(reply: str) -> None:
    assert_streams_as_legacy("json", reply)


@FUZZ
@given(st.data(), TEXT, TEXT, st.booleans(), st.sampled_from(["", "} ", "Sure:\n", "```json\n"]))
def test_legacy_json_replies(data: st.DataObject, reasoning: str, answer: str, ascii_only: bool, before: str) -> None:
    reply = before + json.dumps({"reasoning": reasoning, "answer": answer}, ensure_ascii=ascii_only)
    expected = legacy_value("json", reply)
    streamed = stream_text(JSONParser(FIELDS, legacy=True), reply, data.draw(cuts(reply)))
    # a cut inside a string with escapes before it: json_repair guesses about them (see JSONParser)
    if expected is not None and not ("}" in reasoning + answer and "\\" in reply):
        assert streamed == expected, reply


def test_the_brace_that_ends_a_legacy_reply_ends_its_field_at_once() -> None:
    """The field's last token is at the cut, not at the end of the LM's reply."""
    parser = JSONParser(FIELDS, legacy=True)
    assert parser.feed('{"reasoning": "r", "answer": "x } ') == [
        ("open", "reasoning"),
        ("text", "reasoning", "r"),
        ("close", "reasoning"),
        ("open", "answer"),
        ("text", "answer", "x"),
        ("close", "answer"),
    ]
    assert parser.feed('more", "reasoning": "again"}') == []
    assert parser.finish() == []


def test_a_key_holding_the_balancing_brace_ends_the_reply() -> None:
    """DSPy's legacy reading stops inside the key; the fields after it are not streamed."""
    reply = '{"reasoning": "r", "k}": 1, "answer": "a"}'
    assert ops_of(JSONParser(FIELDS, legacy=True), reply) == [
        ("open", "reasoning"),
        ("text", "reasoning", "r"),
        ("close", "reasoning"),
    ]
    assert legacy_value("json", reply) is None  # DSPy rejects it: the answer is missing


@pytest.mark.parametrize("legacy", [True, False])
def test_a_parser_follows_the_installed_dspy_rule_by_default(legacy: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_parser, "_legacy_json", legacy)
    reply = '{"reasoning": "r", "answer": "x }  tail"}'
    expected = {"reasoning": "r", "answer": "x" if legacy else "x }  tail"}
    assert stream_text(JSONParser(FIELDS), reply, []) == expected
