"""Fixtures of the differential harness: the session's offline LM server, reset, and a memory sink."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from streamll.testing import OfflineLMServer


@pytest.fixture
def server(lm_server: OfflineLMServer) -> Iterator[OfflineLMServer]:
    """The session's offline LM server with default knobs and no recorded requests."""
    lm_server.reset()
    yield lm_server
    lm_server.reset()
