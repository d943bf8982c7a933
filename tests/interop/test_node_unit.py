"""The Node consumers' own unit tests (``interop/test/``), run with Node's test runner."""

from __future__ import annotations

import pytest

from tests.interop.support import INTEROP_DIR, NodeConsumers

pytestmark = pytest.mark.interop


def test_consumer_library_unit_tests_pass(node_consumers: NodeConsumers) -> None:
    result = node_consumers.execute_node("--test", str(INTEROP_DIR / "test" / "wire.test.mjs"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout
