"""DSPy 3.0.4's JSONAdapter and XMLAdapter ``parse``, reproduced: the references the parsers' legacy rules are
checked against in a suite that runs a newer DSPy.

Where the installed DSPy is itself legacy (the ``dspy_matrix`` session), :func:`legacy_value` also checks the
reference against the installed adapter, so the copies cannot drift from the real thing unnoticed.
"""

from __future__ import annotations

import re

import dspy
import json_repair
import regex
from dspy.adapters.utils import parse_value
from streamll.streaming.json_parser import JSONParser, json_rules_are_legacy
from streamll.streaming.xml_parser import XMLParser, xml_rules_are_legacy

from .test_parsers import FIELDS, all_chunkings, stream_text
from .test_parsers_fuzz import adapter_value

XML_FIELD = re.compile(r"<(?P<name>\w+)>((?P<content>.*?))</\1>", re.DOTALL)


def _typed(signature: type[dspy.Signature], fields: dict[str, object]) -> dict[str, object]:
    """The output fields of ``fields``, each parsed to its annotation; every one must be there."""
    fields = {key: value for key, value in fields.items() if key in signature.output_fields}
    for key, value in fields.items():
        fields[key] = parse_value(value, signature.output_fields[key].annotation)
    if fields.keys() != signature.output_fields.keys():
        raise ValueError("missing output fields")
    return fields


class LegacyJSONAdapter(dspy.JSONAdapter):
    """The first balanced ``{...}`` (braces inside strings counted), read by json_repair."""

    def parse(self, signature: type[dspy.Signature], completion: str) -> dict[str, object]:
        match = regex.search(r"\{(?:[^{}]|(?R))*\}", completion, regex.DOTALL)
        if match:
            completion = match.group(0)
        fields = json_repair.loads(completion)
        if not isinstance(fields, dict):
            raise ValueError("LM response cannot be serialized to a JSON object.")
        return _typed(signature, fields)


class LegacyXMLAdapter(dspy.XMLAdapter):
    """The first ``<name>...</name>`` of each output field (bare tags only, no nesting), raw and stripped."""

    def parse(self, signature: type[dspy.Signature], completion: str) -> dict[str, object]:
        fields: dict[str, object] = {}
        for match in XML_FIELD.finditer(completion):
            name = match.group("name")
            if name in signature.output_fields and name not in fields:
                fields[name] = match.group("content").strip()
        return _typed(signature, fields)


def legacy_value(kind: str, reply: str) -> dict[str, object] | None:
    """What a legacy DSPy's ``kind`` ("json" or "xml") adapter reads from ``reply`` (None when it rejects it)."""
    reference, installed, legacy = {
        "json": (LegacyJSONAdapter, dspy.JSONAdapter, json_rules_are_legacy),
        "xml": (LegacyXMLAdapter, dspy.XMLAdapter, xml_rules_are_legacy),
    }[kind]
    expected = adapter_value(reference(), reply)
    if legacy():
        assert adapter_value(installed(), reply) == expected, reply
    return expected


def assert_streams_as_legacy(kind: str, reply: str) -> None:
    """``reply``, which a legacy DSPy accepts, streams its values under the legacy rule for any chunking."""
    expected = legacy_value(kind, reply)
    assert expected is not None
    parser = JSONParser if kind == "json" else XMLParser
    for split in all_chunkings(reply, samples=30):
        assert stream_text(parser(FIELDS, legacy=True), reply, split) == expected, split
