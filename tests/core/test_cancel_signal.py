"""The cancel signal of ``streamll.execution()``: what an LM stream reader sees inside and outside a run."""

from __future__ import annotations

import contextvars
import threading

import pytest
import streamll
from streamll.core.runs import ExecutionCancelled, cancel_flag, cancel_requested, raise_if_cancelled


def test_outside_a_run_nothing_is_cancelled_and_there_is_no_flag() -> None:
    assert cancel_flag() is None
    assert cancel_requested() is False
    raise_if_cancelled()  # no run: never raises


def test_inside_a_run_the_flag_follows_cancel() -> None:
    with streamll.execution(sinks=[]) as run:
        flag = cancel_flag()
        assert flag is not None
        assert flag() is False
        assert cancel_requested() is False
        raise_if_cancelled()  # not asked to stop yet
        run.cancel()
        assert flag() is True
        assert cancel_requested() is True
    assert run.cancelled
    assert cancel_flag() is None
    assert cancel_requested() is False


def test_a_flag_taken_before_cancel_sees_a_later_cancel_from_another_thread() -> None:
    """The reader takes the flag once per request; a cancel arriving mid-stream must still show."""
    with streamll.execution(sinks=[]) as run:
        flag = cancel_flag()
        assert flag is not None
        canceller = threading.Thread(target=run.cancel)
        canceller.start()
        canceller.join()
        assert flag() is True


def test_raise_if_cancelled_raises_and_the_run_swallows_it() -> None:
    reached_after = False
    with streamll.execution(sinks=[]) as run:
        run.cancel()
        with pytest.raises(ExecutionCancelled, match=r"^the execution was cancelled$"):
            raise_if_cancelled()
        raise_if_cancelled()
        reached_after = True
    assert not reached_after
    assert run.cancelled


def test_execution_cancelled_is_not_caught_by_except_exception() -> None:
    """DSPy's retries and fallbacks catch ``Exception``; a cancel must get past them."""
    assert not issubclass(ExecutionCancelled, Exception)
    assert issubclass(ExecutionCancelled, BaseException)
    assert streamll.ExecutionCancelled is ExecutionCancelled
    with streamll.execution(sinks=[]) as run:
        run.cancel()
        try:
            raise_if_cancelled()
        except Exception:  # what a retry loop does
            pytest.fail("ExecutionCancelled was caught by `except Exception`")
    assert run.cancelled


def test_runs_do_not_share_their_signal() -> None:
    with streamll.execution(sinks=[]) as outer:
        outer_flag = cancel_flag()
        with streamll.execution(sinks=[]) as inner:
            inner.cancel()
            assert cancel_requested() is True
        assert outer_flag is not None and outer_flag() is False
        assert cancel_requested() is False
        assert not outer.cancelled


def test_a_thread_without_the_runs_context_sees_no_run() -> None:
    seen: list[object] = []
    with streamll.execution(sinks=[]) as run:
        run.cancel()
        plain = threading.Thread(target=lambda: seen.append(cancel_flag()))
        plain.start()
        plain.join()
        copied = contextvars.copy_context()
        assert copied.run(cancel_requested) is True
    assert seen == [None]


@pytest.mark.parametrize("execution_id", ["a", "A-z_0-9", "x" * 128, "run_2026-12-02"])
def test_ids_usable_as_keys_subjects_and_paths_are_accepted(execution_id: str) -> None:
    assert streamll.execution(execution_id, sinks=[]).execution_id == execution_id


@pytest.mark.parametrize("execution_id", ["", "x" * 129, "a.b", "a b", "a/b", "a:b", "a*", "é", "\na"])
def test_other_ids_are_rejected_with_a_one_line_error(execution_id: str) -> None:
    with pytest.raises(ValueError, match="execution_id must be 1-128 letters"):
        streamll.execution(execution_id, sinks=[])


def test_an_id_with_a_trailing_newline_is_rejected() -> None:
    with pytest.raises(ValueError, match="execution_id must be 1-128 letters"):
        streamll.execution("a\n", sinks=[])
