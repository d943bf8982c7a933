"""Every compatibility test starts and ends with the configuration it found (sinks, filter, redaction)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import streamll
from streamll.core.context import current_execution, current_span


@pytest.fixture(autouse=True)
def restore_configuration() -> Iterator[None]:
    handle = streamll.configure()  # changes nothing; remembers what is in force
    yield
    handle.restore()
    streamll.set_context(**dict.fromkeys(streamll.get_context()))
    # a span left open would make every later event of this thread part of one execution
    assert current_execution.get() is None and current_span.get() is None
