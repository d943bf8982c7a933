"""The harness itself: its comparisons see the differences they are there to catch."""

from __future__ import annotations

from typing import Any

import dspy
from streamll import MemorySink
from streamll.testing import OfflineLMServer

from . import programs as p
from .harness import Case, comparable_requests, exception_summary, first_difference, run_variant


def test_first_difference_names_the_path() -> None:
    assert first_difference({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]}) is None
    assert first_difference({"a": [1, {"b": 3}]}, {"a": [1, {"b": 2}]}) == "['a'][1]['b']: 3 != 2"
    assert first_difference({"stream": True}, {}) == "['stream']: True != '<missing>'"
    assert first_difference([1, 2], [1]) == ": 2 items != 1 items"


def test_exception_summary_keeps_the_chain() -> None:
    try:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise RuntimeError("outer") from exc
    except RuntimeError as error:
        summary = exception_summary(error)
    assert summary is not None
    assert summary["type"] == "builtins.RuntimeError" and summary["message"] == "outer"
    assert summary["cause"]["type"] == "builtins.KeyError"
    assert summary["context"]["type"] == "builtins.KeyError"
    assert summary["suppress_context"] is True
    assert [frame[1] for frame in summary["user_frames"]] == ["test_exception_summary_keeps_the_chain"]


def hotter(cls: type) -> type:
    """A 'decorator' that changes the program: every LM call gets another temperature."""
    forward = cls.forward

    def changed(self: Any, **kwargs: Any) -> Any:
        lm = dspy.settings.lm
        with dspy.context(lm=lm.copy(temperature=0.5)):
            return forward(self, **kwargs)

    cls.forward = changed
    return cls


def test_a_changed_lm_request_is_seen(lm_server: OfflineLMServer, memory_sink: MemorySink) -> None:
    case = Case("predict", p.wrapping(p.predict))
    plain = run_variant(case, lambda cls: cls, lm_server, memory_sink)
    changed = run_variant(case, hotter, lm_server, memory_sink)
    assert plain.result == changed.result
    difference = first_difference(comparable_requests(changed, ordered=True), comparable_requests(plain, ordered=True))
    assert difference is not None and "temperature" in difference
    lm_server.reset()
