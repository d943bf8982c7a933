"""The XML parser's legacy rule (DSPy before 3.3) against that DSPy's own reading of a reply.

The default suite runs the newest DSPy, whose XMLAdapter reads values as XML; the reference is the
older ``XMLAdapter.parse`` (a regular expression, values raw and stripped; see ``legacy_adapters``).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from streamll.streaming import xml_parser
from streamll.streaming.parsers import XMLParser

from .legacy_adapters import assert_streams_as_legacy, legacy_value
from .test_parsers import FIELDS, all_chunkings, stream_text
from .test_parsers_fuzz import CHILD, FUZZ, TEXT, cuts

LEGACY_REPLIES = [
    "<reasoning> a &amp; b &#65; </reasoning>\n<answer>\r\n x <b>y</b> </answer>",  # raw: entities, CR kept
    "<reasoning>r</reasoning><answer>a <answer>b</answer> c</answer>",  # no nesting: the first end tag ends it
    "<reasoning>r</reasoning><answer >no</answer><answer>yes</answer>",  # only bare tags
    '<reasoning>r</reasoning><answer kind="x">no</answer><answer>yes</answer>',
    "<note>x <reasoning>in note</reasoning></note><reasoning>r</reasoning><answer>a</answer>",
    "<note>x <note>y</note> <answer>after the first end tag</answer></note><reasoning>r</reasoning>",
    "<reasoning>r<!-- c --></reasoning><answer><![CDATA[x]]></answer>",  # comments and CDATA as written
    "<reasoning>r</reasoning><answer>a</answer ><answer>b</answer>",
    "<reasoning>r</reasoning><answer>a</reasoning></answer>",
    "<reasoning/><reasoning>r</reasoning><answer>a</answer>",
    "<reasoning>r &lt; s &unknown; & t</reasoning><answer>&amp;</answer>",
    "<reasoning>x < 5 and y <= 2</reasoning><answer><</answer>",  # a "<" that starts no tag is text
    "<reasoning>a <<b>x</b> <</reasoning><answer>1 <2> 3</answer>",
]


@pytest.mark.parametrize("reply", LEGACY_REPLIES)
def test_legacy_rule_streams_what_a_legacy_dspy_reads(reply: str) -> None:
    assert_streams_as_legacy("xml", reply)


RAW_TEXT = st.lists(TEXT | CHILD | st.sampled_from(["&amp;", "&#65;", "\r\n", "<answer >", "</answer >"]), max_size=5)


@FUZZ
@given(st.data(), RAW_TEXT.map("".join), RAW_TEXT.map("".join), st.sampled_from(["\n", "", " text ", "<n>x</n>"]))
def test_legacy_xml_replies(data: st.DataObject, reasoning: str, answer: str, between: str) -> None:
    reply = f"<reasoning>{reasoning}</reasoning>{between}<answer>{answer}</answer>"
    expected = legacy_value("xml", reply)
    streamed = stream_text(XMLParser(FIELDS, legacy=True), reply, data.draw(cuts(reply)))
    if expected is not None:
        assert streamed == expected, reply


def test_a_legacy_reply_cut_short_keeps_the_text_of_an_unfinished_tag() -> None:
    """DSPy rejects a reply whose field never ends: the stream shows the LM's text as it was sent."""
    reply = "<reasoning>r</reasoning><answer>a <b"
    assert legacy_value("xml", reply) is None
    for split in all_chunkings(reply, samples=10):
        assert stream_text(XMLParser(FIELDS, legacy=True), reply, split) == {"reasoning": "r", "answer": "a <b"}


@pytest.mark.parametrize("legacy", [True, False])
def test_a_parser_follows_the_installed_dspy_rule_by_default(legacy: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xml_parser, "_legacy_xml", legacy)
    reply = "<reasoning>r</reasoning><answer>a &amp; b</answer>"
    assert stream_text(XMLParser(FIELDS), reply, []) == {"reasoning": "r", "answer": "a &amp; b" if legacy else "a & b"}
