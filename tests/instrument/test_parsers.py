"""Narrow unit tests: the incremental parsers agree with DSPy's own adapter parsing for any chunking."""

from __future__ import annotations

import random

import dspy
import pytest
from streamll.streaming.parsers import ChatParser, JSONParser, Stripper, XMLParser, parser_for

SIGNATURE = dspy.Signature("question -> reasoning, answer")
FIELDS = ["reasoning", "answer"]

CHAT_REPLIES = [
    "[[ ## reasoning ## ]]\nStep one.\nStep two.\n\n[[ ## answer ## ]]\nForty two.\n\n[[ ## completed ## ]]",
    "[[ ## reasoning ## ]]   inline start  \n  more  \n"
    "[[ ## answer ## ]]\r\nx [[ ## answer ## ]] y\r\n[[ ## completed ## ]]\n",
    "preamble text\n[[ ## reasoning ## ]]\n[[ not a header ]] and [[ ## fake\n[[ ## answer ## ]]\nünï ✓\u2028second\n",
    "[[ ## answer ## ]]\nfirst wins\n[[ ## reasoning ## ]]\nr\n[[ ## answer ## ]]\nsecond ignored\n",
    "[[ ## reasoning ## ]]\n\n\n[[ ## answer ## ]]\n   \n",
]

JSON_REPLIES = [
    '{"reasoning": "Step \\"one\\".\\nStep two \\u00fc \\ud83d\\ude00", "answer": "Forty two \\\\ [[ ok ]]"}',
    '```json\n{\n  "reasoning" : "spaces around" ,\n  "answer":"{\\"nested\\": [1, 2]}"\n}\n```',
    '{"answer": "  keeps whitespace  ", "reasoning": "r"}',
]

XML_REPLIES = [
    "<reasoning>\nStep one &amp; two &lt;ok&gt; &#169; &#x263A;\n</reasoning>\n<answer>\n  Forty two  \n</answer>",
    "noise <other>skip <answer>inner</answer> me</other>\n<reasoning>r\r\nline</reasoning><answer>a</answer>",
    "<reasoning>quotes \"x\" and 'y'</reasoning>\n<answer>[[ ## not a header ## ]]</answer>",
]


def stream_text(parser, reply: str, cuts: list[int]) -> dict[str, str]:
    """Feed ``reply`` split at ``cuts``; return each field's streamed text (checking open/close pairing)."""
    texts: dict[str, str] = {}
    opened: list[str] = []
    closed: list[str] = []
    pieces = [reply[a:b] for a, b in zip([0, *cuts], [*cuts, len(reply)], strict=True)]
    ops = [op for piece in pieces for op in parser.feed(piece)] + parser.finish()
    for op in ops:
        if op[0] == "open":
            assert op[1] not in opened, "a field opens once"
            opened.append(op[1])
            texts[op[1]] = ""
        elif op[0] == "text":
            assert op[1] in opened and op[1] not in closed
            assert op[2], "no empty text operations"
            texts[op[1]] += op[2]
        else:
            closed.append(op[1])
    assert opened == closed
    return texts


def all_chunkings(reply: str, samples: int = 60) -> list[list[int]]:
    rng = random.Random(len(reply))
    chunkings = [[], list(range(1, len(reply)))]  # whole, and one character at a time
    for _ in range(samples):
        count = rng.randint(1, max(1, len(reply) // 3))
        chunkings.append(sorted(rng.sample(range(1, len(reply)), min(count, len(reply) - 1))))
    return chunkings


@pytest.mark.parametrize("reply", CHAT_REPLIES)
def test_chat_parser_matches_chat_adapter(reply: str) -> None:
    expected = {k: v for k, v in dspy.ChatAdapter().parse(SIGNATURE, reply).items() if v}
    for cuts in all_chunkings(reply):
        streamed = {k: v for k, v in stream_text(ChatParser(FIELDS), reply, cuts).items() if v}
        assert streamed == expected, cuts


@pytest.mark.parametrize("reply", JSON_REPLIES)
def test_json_parser_matches_json_adapter(reply: str) -> None:
    expected = dspy.JSONAdapter().parse(SIGNATURE, reply)
    for cuts in all_chunkings(reply):
        assert stream_text(JSONParser(FIELDS), reply, cuts) == expected, cuts


@pytest.mark.parametrize("reply", XML_REPLIES)
def test_xml_parser_matches_xml_adapter(reply: str) -> None:
    expected = dspy.XMLAdapter().parse(SIGNATURE, reply)
    for cuts in all_chunkings(reply):
        assert stream_text(XMLParser(FIELDS), reply, cuts) == expected, cuts


def test_json_non_string_values_stream_their_json_text() -> None:
    texts = stream_text(JSONParser(["count", "tags"]), '{"count": 42, "tags": ["a", "b,c"]}', [5, 17])
    assert texts == {"count": "42", "tags": '["a", "b,c"]'}


def test_stripper_yields_exactly_the_stripped_value() -> None:
    value = "  \n lead and trail \t\n inner  space \n\n"
    for size in (1, 2, 3, 7):
        stripper = Stripper()
        out = "".join(stripper.push(value[i : i + size]) for i in range(0, len(value), size))
        assert out == value.strip()


def test_unknown_adapter_kind_falls_back_to_chat() -> None:
    assert isinstance(parser_for("something-else", FIELDS), ChatParser)
