"""Fixtures for tests that drive DSPy's real streaming path through the offline LM server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dspy
import pytest
from streamll.streaming import patches
from streamll.testing import OfflineLMServer


@pytest.fixture
def server(lm_server: OfflineLMServer) -> Iterator[OfflineLMServer]:
    """The session's offline LM server with default knobs and no recorded requests."""
    lm_server.reset()
    yield lm_server
    lm_server.reset()


@pytest.fixture
def lm(server: OfflineLMServer) -> Iterator[Any]:
    """A streaming-capable ``dspy.LM`` (no cache) configured as DSPy's default, with the ChatAdapter."""
    model = server.lm()
    with dspy.context(lm=model, adapter=dspy.ChatAdapter()):
        yield model


ADAPTERS = {
    "chat": dspy.ChatAdapter,
    "json": dspy.JSONAdapter,
    "xml": dspy.XMLAdapter,
}


@pytest.fixture(autouse=True)
def first_use() -> Iterator[None]:
    """Each test's first instrumented call builds streamll's DSPy wrappers, as a new process's first call does.

    The wrappers are built once per process (``streamll.streaming.patches``); starting each
    test without them means every test also checks what that first call puts in place.
    """
    patches.forget()
    yield
