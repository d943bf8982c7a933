"""ajv (Node) and jsonschema (Python) give the same verdict on the same bodies.

A schema that only one validator understood the same way would not be a
contract: every valid example must pass both, every invalid one fail both.
"""

from __future__ import annotations

import json

import pytest
from streamll.schema import schema_errors

from tests.interop.support import NodeConsumers
from tests.test_wire_format import INVALID_BODIES, valid_bodies

pytestmark = pytest.mark.interop


def test_ajv_agrees_with_jsonschema(node_consumers: NodeConsumers) -> None:
    cases = [("valid", body) for body in valid_bodies()] + sorted(INVALID_BODIES.items())
    stdin = "".join(json.dumps(body) + "\n" for _, body in cases)
    result = node_consumers.execute("validate.mjs", stdin=stdin)
    verdicts = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(verdicts) == len(cases), result.stderr
    for (name, body), verdict in zip(cases, verdicts, strict=True):
        python_valid = not schema_errors(body)
        assert verdict["valid"] is python_valid, f"{name}: ajv {verdict}, jsonschema {schema_errors(body)}"
        assert python_valid is (name == "valid"), name
    assert result.returncode == 1  # the invalid bodies were reported
