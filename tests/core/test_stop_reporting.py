"""What a stopping sink says when the destination hangs, refuses, or its close fails, and when its worker crashes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from streamll.core.events import Event
from streamll.sinks.base import BaseSink

from tests.core.support import event
from tests.helpers import wait_until

PREFIX = "streamll sink remote: "


class Fatal(BaseException):
    """Not an Exception: nothing in a transport should raise it, so the worker must not swallow it."""


class Remote(BaseSink):
    """A destination at ``test://dest`` that can hang or fail in each step."""

    options = SimpleNamespace(display_url="test://dest")
    retry_backoff = 0.01
    retry_backoff_max = 0.05

    def __init__(self, *, hang: str = "", fail: dict[str, BaseException] | None = None) -> None:
        super().__init__(name="remote")
        self.hang = hang
        self.fail = fail or {}
        self.written: list[Event] = []
        self.entered: list[str] = []

    async def _step(self, name: str) -> None:
        self.entered.append(name)
        if name in self.fail:
            raise self.fail[name]
        if self.hang == name:
            await asyncio.Event().wait()

    async def open(self) -> None:
        await self._step("open")

    async def aclose(self) -> None:
        await self._step("close")

    async def write_batch(self, events: list[Any]) -> None:
        await self._step("write")
        self.written.extend(events)


@pytest.fixture
def caplog_streamll(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG, logger="streamll"):
        yield caplog


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == level]


@pytest.mark.parametrize(("hang", "doing"), [("write", "a write to"), ("open", "connecting to")])
def test_a_stop_that_has_to_cancel_says_what_was_pending_and_where(
    caplog_streamll: pytest.LogCaptureFixture, hang: str, doing: str
) -> None:
    sink = Remote(hang=hang)
    sink.enqueue(event(0))
    wait_until(lambda: hang in sink.entered, what=f"the {hang} to start")
    assert sink.stop(timeout=0.2) is False
    assert not sink.is_running and sink.stats.dropped == 1
    errors = messages(caplog_streamll, logging.ERROR)
    assert f"{PREFIX}stop timeout passed while {doing} test://dest was still pending; gave up" in errors


def test_a_close_that_hangs_after_a_cancelled_write_is_given_half_the_grace(
    caplog_streamll: pytest.LogCaptureFixture,
) -> None:
    sink = Remote(hang="write")
    sink.enqueue(event(0))
    wait_until(lambda: "write" in sink.entered, what="the write to start")
    sink.hang = "close"
    assert sink.stop(timeout=0.1) is False
    assert not sink.is_running  # done within stop's grace: the close was not waited on for long
    assert f"{PREFIX}close failed: TimeoutError: " in messages(caplog_streamll, logging.WARNING)


def test_a_close_that_fails_at_stop_is_logged_and_delivery_still_counts(
    caplog_streamll: pytest.LogCaptureFixture,
) -> None:
    sink = Remote(fail={"close": RuntimeError("socket gone")})
    sink.enqueue(event(0))
    assert sink.flush(timeout=10)
    assert sink.stop(timeout=5) is True
    assert sink.stats.delivered == 1
    assert messages(caplog_streamll, logging.WARNING) == [f"{PREFIX}close failed: RuntimeError: socket gone"]


def test_a_sink_that_never_connected_gives_up_at_once_when_stopped(caplog_streamll: pytest.LogCaptureFixture) -> None:
    sink = Remote(fail={"open": ConnectionError("no route")})
    sink.enqueue(event(0))
    wait_until(lambda: sink.stats.write_errors >= 1, what="the first failed connect")
    started = time.monotonic()
    assert sink.stop(timeout=30) is False
    assert time.monotonic() - started < 5  # not the 30 s timeout: it never answered
    stats = sink.stats
    reason = "could not connect to test://dest (ConnectionError: no route)"
    assert stats.last_error == f"stopped with 1 undelivered event(s): {reason}"
    assert f"{PREFIX}stopped with 1 undelivered event(s) (counted as dropped): {reason}" in messages(
        caplog_streamll, logging.ERROR
    )


def test_a_worker_that_crashes_says_so_and_counts_what_it_held(caplog_streamll: pytest.LogCaptureFixture) -> None:
    sink = Remote(fail={"write": Fatal("bug in a transport")})
    sink.enqueue(event(0))
    wait_until(lambda: not sink.is_running, what="the worker to end")
    stats = sink.stats
    assert (stats.delivered, stats.dropped) == (0, 1)
    errors = messages(caplog_streamll, logging.ERROR)
    assert errors == [
        f"{PREFIX}sink worker crashed: Fatal: bug in a transport",
        f"{PREFIX}stopped with 1 undelivered event(s) (counted as dropped)",
    ]
    assert sink.stop(timeout=1) is False  # already ended: nothing left to wait for
