"""Narrow unit tests of the reply parsers on the edges of each adapter's format.

Where DSPy's adapter parses the reply, the streamed text must equal its value for
any chunking; where DSPy rejects the reply (malformed markup), the parser's
documented fallback is asserted: the LM's text stays visible as it was sent.
"""

from __future__ import annotations

import re

import dspy
import pytest
from dspy.utils.exceptions import AdapterParseError
from streamll.streaming import xml_parser
from streamll.streaming.json_parser import json_rules_are_legacy
from streamll.streaming.parsers import ChatParser, JSONParser, XMLParser, adapter_kind, parser_for
from streamll.streaming.xml_parser import xml_rules_are_legacy

from .test_parsers import FIELDS, SIGNATURE, all_chunkings, stream_text


def ops_of(parser, reply: str, cuts: list[int] | None = None) -> list[tuple[str, ...]]:
    """Every operation for ``reply`` fed in pieces cut at ``cuts`` (whole when None), then the end."""
    cuts = cuts or []
    pieces = [reply[a:b] for a, b in zip([0, *cuts], [*cuts, len(reply)], strict=True)]
    return [op for piece in pieces for op in parser.feed(piece)] + parser.finish()


def joined(ops: list[tuple[str, ...]]) -> dict[str, str]:
    texts: dict[str, str] = {}
    for op in ops:
        if op[0] == "open":
            texts[op[1]] = ""
        elif op[0] == "text":
            texts[op[1]] += op[2]
    return texts


# ---------------------------------------------------------------------------- JSONAdapter

JSON_EDGE_REPLIES = [
    '{"reasoning": "a\\b\\f\\/\\t\\r\\n\\"\\\\z", "answer": "x"}',  # every one-letter escape
    '{"reaso\\u006eing": "key with an escape", "answer": "\\u00e9\\u263a"}',
    'noise before {"answer" : "y", "reasoning": "r"} {"answer": "a second object is ignored"}',
    '{"reasoning": "r", "answer": "high \\ud83d\\ude00 low"}',
    '{"answer":"\\u00zz kept as written", "reasoning":"r"}',
    '{"answer": 1], "reasoning": "a stray bracket ends the value, not the object"}',
    '{"reasoning": "not JSON: \\q and \\x41 \\xZZ", "answer": "x"}',  # DSPy's json_repair fallback reads these
    '{"reasoning": "cut short \\x4", "answer": "\\u00e"}',  # a hex escape the closing quote cuts short
    # after an escape JSON lacks, json_repair's rules: \/ \f as written, \' as ', space after a last line end dropped
    '{"reasoning": "\\q then \\/ \\f \\\' \\u00e9", "answer": "ends in a line break \\n  "}',
    '{"reasoning": "\\x4\\n next \\u12\\"q", "answer": "\\x 4 \\u4_10 \\u+04a"}',  # not hex digits: as written
    '{"reasoning": "\\X41 is not a hex escape", "answer": "x"}',
    '{"reasoning": "\\ud800\\udc00 and \\udbff\\udfff", "answer": "surrogate pairs at the ends of the ranges"}',
    # a high surrogate without its low half stays alone, as JSON decodes it
    '{"reasoning": "\\ud83d x \\ud83d\\u0041 \\ud83d\\ud83d\\ude00 \\ud83d\\n '
    '\\ud83d\\ue000 \\udc00\\udc00", "answer": "a"}',
    '{"reasoning": "\\ud83d\\q \\ud83d\\u00zz \\ud83d\\x41", "answer": "\\ud83d"}',
    '{"note\\ud83dx": 1, "more\\ud83d": 2, "reasoning": "r", "answer": "a"}',  # nor does it leak out of a key
    '{"answer": , "reasoning": "a missing value is empty"}',
    '{"answer": unquoted X text, "reasoning": "r"}',  # DSPy's json_repair fallback quotes these
    '{"reasoning": "\\q", "answer": "x \\n"}',  # not JSON: a value ending in a line break loses its trailing space
    '{"reasoning": "\\q", "answer": "cut short  ',  # not JSON, cut short: trailing whitespace dropped
    '{"reasoning": "\\q", "answer": "cut short  \\u12',  # ... unless an escape cut short ends it
    '{"reasoning": "r", "answer": "cut after an escape\\nnext',
    '{"reasoning": "r", "answer": "cut after a short hex escape \\u12x',
]


@pytest.mark.parametrize("reply", JSON_EDGE_REPLIES)
def test_json_edges_match_json_adapter(reply: str) -> None:
    expected = dspy.JSONAdapter().parse(SIGNATURE, reply)
    for cuts in all_chunkings(reply, samples=30):
        assert stream_text(JSONParser(FIELDS), reply, cuts) == expected, cuts


def test_json_raw_values_end_at_their_own_closing_bracket() -> None:
    reply = '{"reasoning": {"a": [1, {"b": "]}\\""}], "c": "}"}, "answer": [[1], 2]}'
    for cuts in all_chunkings(reply, samples=30):
        assert stream_text(JSONParser(FIELDS), reply, cuts) == {
            "reasoning": '{"a": [1, {"b": "]}\\""}], "c": "}"}',
            "answer": "[[1], 2]",
        }, cuts


def test_json_scalars_stream_their_json_text_and_end_the_object() -> None:
    assert joined(ops_of(JSONParser(FIELDS), '{"answer": true , "reasoning": null}')) == {
        "answer": "true",
        "reasoning": "null",
    }
    # the object's closing brace ends the last raw value; what follows is not part of it
    ops = ops_of(JSONParser(FIELDS), '{"answer": 42} , "reasoning": "after the end"}')
    assert ops == [("open", "answer"), ("text", "answer", "42"), ("close", "answer")]
    # a list value closed by "]" is followed by more keys
    assert joined(ops_of(JSONParser(FIELDS), '{"answer": [1, 2], "reasoning": "r"}')) == {
        "answer": "[1, 2]",
        "reasoning": "r",
    }


def test_json_reply_cut_short_closes_the_open_value_with_its_text() -> None:
    assert ops_of(JSONParser(FIELDS, legacy=False), '{"answer": 4') == [
        ("open", "answer"),
        ("text", "answer", "4"),
        ("close", "answer"),
    ]
    assert ops_of(JSONParser(FIELDS, legacy=False), '{"answer": "cut') == [
        ("open", "answer"),
        ("text", "answer", "cut"),
        ("close", "answer"),
    ]
    assert ops_of(JSONParser(FIELDS, legacy=False), '{"answer": "cut \\ud83d') == [
        ("open", "answer"),
        ("text", "answer", "cut "),
        ("text", "answer", "\ud83d"),  # a high surrogate cut off from its low half stays
        ("close", "answer"),
    ]
    assert ops_of(JSONParser(FIELDS, legacy=False), '{"answer": [1, {"a": ') == [
        ("open", "answer"),
        ("text", "answer", '[1, {"a":'),
        ("close", "answer"),
    ]


def test_json_legacy_rule_a_brace_in_a_string_that_balances_the_braces_ends_the_reply() -> None:
    """Older DSPy cuts the reply at the first balanced ``{...}`` (braces in strings counted) before reading it."""
    reply = '{"reasoning": "a { b } c", "answer": "x }  tail", "more": 1}'
    legacy = {"reasoning": "a { b } c", "answer": "x"}  # json_repair reads '..."answer": "x }': quote missing
    for cuts in all_chunkings(reply, samples=30):
        assert stream_text(JSONParser(FIELDS, legacy=True), reply, cuts) == legacy, cuts
        assert stream_text(JSONParser(FIELDS, legacy=False), reply, cuts) == {
            "reasoning": "a { b } c",
            "answer": "x }  tail",
        }
    assert dspy.JSONAdapter().parse(SIGNATURE, reply) == (
        legacy if json_rules_are_legacy() else {"reasoning": "a { b } c", "answer": "x }  tail"}
    )


@pytest.mark.parametrize("cut", ['"answer":', '"answer": ', '"answer": "', '"answer"'])
def test_json_reply_cut_before_a_value_streams_it_empty_as_dspy_reads_it(cut: str) -> None:
    reply = '{"reasoning": "r", ' + cut
    try:
        expected = dspy.JSONAdapter().parse(SIGNATURE, reply)
    except AdapterParseError:  # no colon yet: DSPy has no answer at all
        expected = {"reasoning": "r"}
    assert {key: value for key, value in expected.items() if value} == {"reasoning": "r"}
    ops = ops_of(JSONParser(FIELDS), reply)
    assert joined(ops) == expected
    assert ops.count(("close", "answer")) == ("answer" in expected)


@pytest.mark.parametrize(
    ("answer", "legacy"), [({"answer": ""}, True), ({"answer": "}"}, False), (AdapterParseError, False)]
)
def test_json_rules_follow_what_the_installed_adapter_reads_from_a_brace_in_a_string(
    answer: object, legacy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule is read off the installed JSONAdapter once: a DSPy that cuts ``{"answer": "}"}`` at the brace is
    legacy; one that reads it whole, or fails on it, is not."""
    from dspy.adapters.json_adapter import JSONAdapter
    from streamll.streaming import json_parser

    replies: list[str] = []

    def parse(self: object, signature: type[dspy.Signature], completion: str) -> dict[str, str]:
        assert list(signature.output_fields) == ["answer"]
        replies.append(completion)
        if answer is AdapterParseError:
            raise ValueError("cannot parse")
        return answer  # type: ignore[return-value]

    monkeypatch.setattr(JSONAdapter, "parse", parse)
    monkeypatch.setattr(json_parser, "_legacy_json", None)
    assert json_rules_are_legacy() is legacy
    assert json_rules_are_legacy() is legacy  # read once
    assert replies == ['{"answer": "}"}']


@pytest.mark.parametrize("escape", ["\\", "\\x4", "\\u12", "\\u"])
def test_json_reply_cut_short_inside_an_escape_keeps_it_as_written(escape: str) -> None:
    """A reply cut (``finish_reason="length"``) in the middle of an escape: DSPy keeps the escape as written."""
    reply = '{"reasoning": "r", "answer": "a' + escape
    expected = dspy.JSONAdapter().parse(SIGNATURE, reply)
    assert expected["answer"] == "a" + escape
    for cuts in all_chunkings(reply, samples=30):
        assert stream_text(JSONParser(FIELDS), reply, cuts) == expected, cuts


def test_json_empty_object_and_unknown_keys_stream_nothing() -> None:
    assert ops_of(JSONParser(FIELDS), '{} {"answer": "after the object"}') == []
    assert ops_of(JSONParser(FIELDS), '{"other": "x", "more": [1]}') == []
    # DSPy reads the first object only: a later one streams nothing, even with a comma before its field
    assert ops_of(JSONParser(FIELDS), '{"answer": "a"} {"note": 1, "reasoning": "after the object"}') == [
        ("open", "answer"),
        ("text", "answer", "a"),
        ("close", "answer"),
    ]


def test_json_text_is_emitted_as_it_arrives_not_at_the_value_end() -> None:
    parser = JSONParser(FIELDS)
    assert parser.feed('{"answer": "Hel') == [("open", "answer"), ("text", "answer", "Hel")]
    assert parser.feed("lo\\") == [("text", "answer", "lo")]
    assert parser.feed("n w") == [("text", "answer", "\n w")]
    assert parser.feed('"') == [("close", "answer")]
    assert parser.finish() == []


# ---------------------------------------------------------------------------- XMLAdapter

XML_EDGE_REPLIES = [
    "<reasoning>&#65;&#x42;&quot;&apos;&gt;</reasoning><answer>a</answer>",
    "<reasoning>r</reasoning><note><note>x</note><answer>inside</answer></note><answer>out</answer>",
    "<reasoning>a <b>bold</b> c</reasoning><answer>x</answer>",
    "<reasoning>line\r\nnext\rthird\r</reasoning><answer>x\r\n</answer>",
    "<reasoning>r</reasoning><br/><hr /><answer>x</answer>",
    '<reasoning >r</reasoning><answer kind="final">x</answer>',
    "<reasoning>r</reasoning><answer>5 &lt; 6 &amp;&amp; 7 &gt; 6</answer>",
    "<reasoning>&#x000000041;&#0000000066;</reasoning><answer>long references</answer>",
    "<reasoning>r</reasoning ><answer>x</answer\n>",
    "<reasoning>r</reasoningX>s</reasoning><answer>x</answer>",
    "<reasoning>r</reasoning><answer>a <br/> b &amp; c <q a='1'>&lt;</q> </answer>",  # children as ElementTree writes
    "<reasoning>r</reasoning><answer>\n<p>x <i>y</i><br/></p>\n</answer>",  # whitespace kept around children
    "<reasoning>a<!-- c -->b<?pi x?></reasoning><answer>a<![CDATA[x<&y]]>b<p/><![CDATA[<&>]]></answer>",
    "<reasoning>r</reasoning><answer>a<answer>nested</answer>c</answer>",
    "<reasoning>r</reasoning><answer><p class='x'><i>a &amp; b</i> c</p></answer>",
    "<reasoning>r</reasoning><answer>a <b>x<!-- y > <i> --></b> after</answer>",  # a comment's tags count not
    "<reasoning>r</reasoning><answer>a <b><c></b></c> z</answer>",  # a child that is not XML: as sent
]


@pytest.mark.parametrize("reply", XML_EDGE_REPLIES)
def test_xml_edges_match_xml_adapter(reply: str) -> None:
    """The parser follows the installed DSPy's XMLAdapter (its rules changed in 3.3)."""
    try:
        expected = dspy.XMLAdapter().parse(SIGNATURE, reply)
    except AdapterParseError:  # malformed for this DSPy: the fallback shows the LM's text as it was sent
        expected = None
    for cuts in all_chunkings(reply, samples=30):
        streamed = stream_text(XMLParser(FIELDS), reply, cuts)
        if expected is None:
            assert all(value in reply for value in streamed.values()), (cuts, streamed)
        else:
            assert streamed == expected, cuts


def test_xml_character_references_decode_and_unknown_ones_stay_as_written() -> None:
    reply = "<answer>&#X41;&#x263A;&#169;&#xZZ;&#12a;&nbsp;&unknown;</answer>"
    for cuts in all_chunkings(reply, samples=30):
        assert stream_text(XMLParser(["answer"], legacy=False), reply, cuts) == {
            "answer": "A\u263a\u00a9&#xZZ;&#12a;&nbsp;&unknown;"
        }, cuts


def test_xml_ampersand_without_entity_is_text() -> None:
    parser = XMLParser(["answer"], legacy=False)
    assert parser.feed("<answer>fish & chips") == [("open", "answer"), ("text", "answer", "fish")]
    # a short "&..." may still become an entity: it waits
    assert parser.feed(" and") == []
    # more than an entity's length without ";": the "&" is text
    assert joined([("open", "answer"), *parser.feed(" mushy peas</answer>")]) == {"answer": " & chips and mushy peas"}
    assert parser.finish() == []
    # an "&" and twelve more characters without ";" cannot be an entity: they stream at once
    assert joined(XMLParser(["answer"], legacy=False).feed("<answer>x &abcdefghijkl")) == {"answer": "x &abcdefghijkl"}
    assert joined(XMLParser(["answer"], legacy=False).feed("<answer>x &abcdefghijk")) == {"answer": "x"}
    # at the reply's end an unfinished "&" is text too
    assert joined(ops_of(XMLParser(["answer"], legacy=False), "<answer>a &amp b")) == {"answer": "a &amp b"}
    assert joined(ops_of(XMLParser(["answer"], legacy=False), "<answer>a &amp\r")) == {"answer": "a &amp"}


@pytest.mark.parametrize("legacy", [True, False])
def test_xml_a_less_than_sign_streams_as_soon_as_the_next_one_shows_it_starts_no_tag(legacy: bool) -> None:
    """``x < 5``: the "<" is text; it need not wait for a ">" that may never come."""
    parser = XMLParser(["answer"], legacy=legacy)
    assert joined(parser.feed("<answer>x < 5 and y <")) == {"answer": "x < 5 and y"}
    assert joined([("open", "answer"), *parser.feed("= 2</answer>"), *parser.finish()]) == {"answer": " <= 2"}


def test_xml_a_field_opens_in_the_chunk_that_starts_it() -> None:
    parser = XMLParser(FIELDS, legacy=False)
    assert parser.feed("<reasoning>r</reasoning>< 3 ></stray><answer>x") == [
        ("open", "reasoning"),
        ("text", "reasoning", "r"),
        ("close", "reasoning"),
        ("open", "answer"),
        ("text", "answer", "x"),
    ]
    assert joined(ops_of(XMLParser(FIELDS, legacy=False), "<><answer>after an empty tag</answer>")) == {
        "answer": "after an empty tag"
    }


def test_xml_a_child_element_streams_whole_when_it_ends() -> None:
    """DSPy >= 3.3 writes a value's child elements as ElementTree does, so a child is held until its end tag."""
    parser = XMLParser(["answer"], legacy=False)
    assert parser.feed("<answer>x <i") == [("open", "answer"), ("text", "answer", "x")]
    assert parser.feed(">y</i") == []
    assert parser.feed("></ans") == [("text", "answer", " <i>y</i>")]
    assert parser.feed("wer>") == [("close", "answer")]
    # a child or tag left open at the reply's end (DSPy rejects the reply) stays as it was sent
    assert joined(ops_of(XMLParser(["answer"], legacy=False), "<answer>x <i>y <b")) == {"answer": "x <i>y <b"}
    assert joined(ops_of(XMLParser(["answer"], legacy=False), "<answer>x <i")) == {"answer": "x <i"}
    assert joined(ops_of(XMLParser(["answer"], legacy=False), "<answer>x </ans")) == {"answer": "x </ans"}
    assert joined(ops_of(XMLParser(["answer"], legacy=False), "<answer>x <!-- y")) == {"answer": "x <!-- y"}
    assert joined(ops_of(XMLParser(["answer"], legacy=False), "<answer>x </answer")) == {"answer": "x </answer"}


def test_xml_a_tag_that_only_starts_like_the_closing_one_is_text_as_soon_as_it_ends() -> None:
    parser = XMLParser(["answer"], legacy=False)
    assert parser.feed("<answer>x</answerX>y") == [
        ("open", "answer"),
        ("text", "answer", "x"),
        ("text", "answer", "</answerX>"),
        ("text", "answer", "y"),
    ]


def test_xml_a_child_element_streams_in_the_chunk_that_ends_it() -> None:
    parser = XMLParser(["answer"], legacy=False)
    assert parser.feed("<answer>text first <p class='x'><i>a &amp; b</i> c</p> more") == [
        ("open", "answer"),
        ("text", "answer", "text first"),
        ("text", "answer", ' <p class="x"><i>a &amp; b</i> c</p>'),  # nested children: one element, as ET writes it
        ("text", "answer", " more"),
    ]
    assert parser.finish() == [("close", "answer")]


def test_xml_leading_whitespace_before_text_is_dropped_even_when_a_child_follows() -> None:
    """A difference from DSPy >= 3.3 that streaming cannot avoid: a value with a child element keeps its
    leading whitespace, but the child is not known yet when the text after that whitespace streams."""
    reply = "<reasoning>r</reasoning><answer>  x <b>y</b></answer>"
    assert dspy.XMLAdapter().parse(SIGNATURE, reply)["answer"] == (
        "  x <b>y</b>" if not xml_rules_are_legacy() else "x <b>y</b>"
    )
    assert stream_text(XMLParser(FIELDS), reply, []) == {"reasoning": "r", "answer": "x <b>y</b>"}


def test_xml_self_closing_field_is_empty_and_a_skipped_element_hides_its_fields() -> None:
    assert ops_of(XMLParser(FIELDS, legacy=False), "<reasoning/><answer>a</answer>") == [
        ("open", "reasoning"),
        ("close", "reasoning"),
        ("open", "answer"),
        ("text", "answer", "a"),
        ("close", "answer"),
    ]
    reply = "<other/><wrap><answer>hidden</answer><wrap/><wrap>x</wrap></wrap>< 3 ><answer>shown</answer>"
    assert joined(ops_of(XMLParser(FIELDS, legacy=False), reply)) == {"answer": "shown"}
    assert ops_of(XMLParser(FIELDS, legacy=False), "</answer>text <answer") == []


def test_xml_legacy_rules_keep_values_raw() -> None:
    reply = "<reasoning> a &amp; b\r\n</reasoning>\n<answer>&lt;x&gt; & y</answer>"
    for cuts in all_chunkings(reply, samples=30):
        assert stream_text(XMLParser(FIELDS, legacy=True), reply, cuts) == {
            "reasoning": "a &amp; b",
            "answer": "&lt;x&gt; & y",
        }, cuts
    # the default follows the installed DSPy: entities decoded from 3.3 on, raw before
    adapter = dspy.XMLAdapter().parse(dspy.Signature("question -> answer"), "<answer>&amp;</answer>")
    assert joined(ops_of(XMLParser(["answer"]), "<answer>&amp;</answer>")) == adapter


def test_xml_legacy_rules_read_only_bare_tags_and_do_not_nest() -> None:
    """dspy < 3.3 matches ``<(\\w+)>(.*?)</\\1>``: an element ends at its first closing tag; attributes hide a tag."""
    nested = "<reasoning>r</reasoning><note><note>x</note><answer>inside</answer></note><answer>out</answer>"
    marked = '<reasoning >r</reasoning><answer kind="final">x</answer><answer/>'
    for cuts in all_chunkings(nested, samples=30):
        assert stream_text(XMLParser(FIELDS, legacy=True), nested, cuts) == {"reasoning": "r", "answer": "inside"}
    for cuts in all_chunkings(marked, samples=30):
        assert stream_text(XMLParser(FIELDS, legacy=True), marked, cuts) == {}


def legacy_xml_parse(adapter: dspy.XMLAdapter, signature: type[dspy.Signature], completion: str) -> dict[str, str]:
    """XMLAdapter.parse of dspy < 3.3: ``<name>value</name>`` found by a regular expression, values raw."""
    fields: dict[str, str] = {}
    for name, value in re.findall(r"<(\w+)>(.*?)</\1>", completion, re.DOTALL):
        if name in signature.output_fields:
            fields.setdefault(name, value.strip())
    if fields.keys() != signature.output_fields.keys():
        raise AdapterParseError(adapter_name="XMLAdapter", signature=signature, lm_response=completion)
    return fields


def test_xml_default_rules_are_those_of_the_installed_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    """A DSPy whose XMLAdapter keeps entities raw gets the legacy rules; when the check fails, the current ones."""
    monkeypatch.setattr(xml_parser, "_legacy_xml", None)  # the installed adapter is checked once per process
    monkeypatch.setattr(dspy.XMLAdapter, "parse", legacy_xml_parse)
    assert xml_rules_are_legacy() is True
    assert joined(ops_of(XMLParser(["answer"]), "<answer>&amp;</answer>")) == {"answer": "&amp;"}

    def broken(*args: object) -> dict[str, str]:
        raise RuntimeError("XMLAdapter.parse fails")

    monkeypatch.setattr(xml_parser, "_legacy_xml", None)
    monkeypatch.setattr(dspy.XMLAdapter, "parse", broken)
    assert xml_rules_are_legacy() is False
    assert joined(ops_of(XMLParser(["answer"]), "<answer>&amp;</answer>")) == {"answer": "&"}


# ---------------------------------------------------------------------------- ChatAdapter

CHAT_EDGE_REPLIES = [
    "[[ ## reasoning ## ]]\nr\n[[ ## other ## ]]\nskipped\n[[ ## answer ## ]] a",
    "[[ ## reasoning ## ]]\n[[ ## !x\n[[ ## ans\n[[ #\n[[ ## answer ## ]] tail text\nmore",
    "[[ ## reasoning ## ]]\n  [[ ## answer ## ] nope\n[[ ## answer ## ]]",
    "[[ ## reasoning ## ]] r\r[[ ## answer ## ]]\ra\r",
    "[[ ## reasoning ## ]]\r\nx\r\n\r\n[[ ## answer ## ]]\r\ny\r\n",
    "[[ ## reasoning ## ]]\nx\n[[ ## answer ## ]] y \n",
    "[[ ## reasoning ## ]]\nx\n[[ ## answer ## ]]",
    "[[ ## reasoning ## ]]\nr\n[[ ## answer ## ]]\nx\n[[ ## ans",  # a header cut short is text
    "[[ ## reasoning ## ]]\r\nline one\r\nline two\r\n[[ ## answer ## ]]\r\na",  # CRLF inside a value
    "[[ ## reasoning ## ]]\nr\n[[ ## answer ## ]] a\r",  # the reply ends with CR on the header's line
]


@pytest.mark.parametrize("reply", CHAT_EDGE_REPLIES)
def test_chat_edges_match_chat_adapter(reply: str) -> None:
    expected = {k: v for k, v in dspy.ChatAdapter().parse(SIGNATURE, reply).items() if v}
    for cuts in all_chunkings(reply, samples=30):
        streamed = {k: v for k, v in stream_text(ChatParser(FIELDS), reply, cuts).items() if v}
        assert streamed == expected, cuts


def test_chat_text_streams_before_the_line_ends() -> None:
    parser = ChatParser(FIELDS)
    assert parser.feed("[[ ## answer ## ]]\nFor") == [("open", "answer"), ("text", "answer", "For")]
    assert parser.feed("ty two") == [("text", "answer", "ty two")]
    # a line that might be a header waits; one that cannot be is text at once
    assert parser.feed("\n[[ ## ") == []
    assert parser.feed("reas") == []
    assert parser.feed("on x") == [("text", "answer", "\n[[ ## reason x")]
    assert parser.feed("\n[[ ## !") == [("text", "answer", "\n[[ ## !")]  # no field name can follow
    assert parser.finish() == [("close", "answer")]


def test_chat_header_of_an_unknown_field_ends_the_open_one() -> None:
    ops = ops_of(ChatParser(FIELDS), "[[ ## answer ## ]]\na\n[[ ## completed ## ]]\ntrailer")
    assert ops == [("open", "answer"), ("text", "answer", "a"), ("close", "answer")]
    ops = ops_of(ChatParser(FIELDS), "[[ ## answer ## ]] same line")
    assert ops == [("open", "answer"), ("text", "answer", "same line"), ("close", "answer")]


# ---------------------------------------------------------------------------- choosing a parser


def test_each_adapter_and_its_subclasses_get_their_parser() -> None:
    class MyJSON(dspy.JSONAdapter):
        pass

    class MyXML(dspy.XMLAdapter):
        pass

    class MyChat(dspy.ChatAdapter):
        pass

    kinds = [adapter_kind(a) for a in (dspy.JSONAdapter(), MyJSON(), dspy.XMLAdapter(), MyXML(), MyChat(), object())]
    assert kinds == ["json", "json", "xml", "xml", "chat", "chat"]
    assert isinstance(parser_for("json", FIELDS), JSONParser)
    assert isinstance(parser_for("xml", FIELDS), XMLParser)
    assert isinstance(parser_for("chat", FIELDS), ChatParser)
