"""The background worker: its loop thread, its exit-safe pool, the exit timeout and the reset in a forked child."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import CancelledError

import pytest
from streamll.sinks.worker import (
    DEFAULT_EXIT_TIMEOUT,
    EXIT_TIMEOUT_ENV,
    BackgroundWorker,
    ExitSafeExecutor,
    exit_timeout,
    worker,
)

from tests.helpers import wait_until

WAIT = 5.0


@pytest.fixture
def pool() -> Iterator[ExitSafeExecutor]:
    executor = ExitSafeExecutor(max_workers=2)
    yield executor
    executor.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def own_worker() -> Iterator[BackgroundWorker]:
    background = BackgroundWorker()
    yield background
    _stop(background)


def _stop(background: BackgroundWorker) -> None:
    loop, thread = background._loop, background._thread
    if loop is not None and thread is not None and thread.is_alive():
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)


def _threads(prefix: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(prefix)]


def test_the_pool_runs_work_and_reports_results_and_errors(pool: ExitSafeExecutor) -> None:
    assert pool.submit(lambda a, b=0: a + b, 2, b=3).result(WAIT) == 5

    def fail() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        pool.submit(fail).result(WAIT)
    assert pool.submit(lambda: "still working").result(WAIT) == "still working"


def test_pool_threads_are_named_daemons_and_idle_ones_are_reused() -> None:
    pool = ExitSafeExecutor(max_workers=4, thread_name_prefix="reuse-test")
    try:
        for index in range(5):
            assert pool.submit(threading.current_thread).result(WAIT).name == "reuse-test-0", index
            # the thread counts itself idle just after it hands over the result
            wait_until(lambda: pool.idle_threads == 1, WAIT, what="the pool thread to go idle")
        assert [thread.name for thread in _threads("reuse-test")] == ["reuse-test-0"]
        assert all(thread.daemon for thread in _threads("reuse-test"))
    finally:
        pool.shutdown()
    assert _threads("reuse-test") == []


def test_the_pool_never_runs_more_threads_than_max_workers() -> None:
    pool = ExitSafeExecutor(max_workers=2, thread_name_prefix="bound-test")
    gate = threading.Event()
    running: list[str] = []
    try:
        submitting = time.monotonic()
        futures = [
            pool.submit(lambda: (running.append(threading.current_thread().name), gate.wait(WAIT))) for _ in range(5)
        ]
        assert time.monotonic() - submitting < 0.5  # a busy pool starts a thread or queues the work: never waits
        assert len(_threads("bound-test")) == 2
        gate.set()
        for future in futures:
            future.result(WAIT)
        assert set(running) == {"bound-test-0", "bound-test-1"} and len(running) == 5
    finally:
        gate.set()
        pool.shutdown()


def test_the_default_pool_prefix_names_streamll_io_threads() -> None:
    pool = ExitSafeExecutor(max_workers=1)
    try:
        assert pool.submit(lambda: threading.current_thread().name).result(WAIT).startswith("streamll-io-")
    finally:
        pool.shutdown()


def test_after_shutdown_new_work_is_refused() -> None:
    pool = ExitSafeExecutor(max_workers=1)
    pool.submit(lambda: None).result(WAIT)
    pool.shutdown(wait=True)
    with pytest.raises(RuntimeError, match=r"^cannot schedule new futures after shutdown$"):  # as concurrent.futures
        pool.submit(lambda: None)


def test_shutdown_finishes_queued_work_unless_told_to_cancel_it() -> None:
    for cancel in (False, True):
        pool = ExitSafeExecutor(max_workers=1, thread_name_prefix=f"shutdown-test-{cancel}")
        gate = threading.Event()
        done: list[int] = []
        first = pool.submit(gate.wait, WAIT)
        queued = [pool.submit(done.append, index) for index in range(3)]
        pool.shutdown(wait=False, cancel_futures=True) if cancel else pool.shutdown(wait=False)  # the default keeps it
        gate.set()
        assert first.result(WAIT) is True
        if cancel:
            assert all(future.cancelled() for future in queued)
            with pytest.raises(CancelledError):
                queued[0].result(WAIT)
        else:
            for future in queued:
                future.result(WAIT)
        prefix = f"shutdown-test-{cancel}"
        wait_until(lambda prefix=prefix: _threads(prefix) == [], WAIT, what="the pool thread to end")
        pool.shutdown(wait=True)
        assert done == ([] if cancel else [0, 1, 2])


def test_a_future_cancelled_while_queued_is_not_run() -> None:
    pool = ExitSafeExecutor(max_workers=1)
    gate = threading.Event()
    ran: list[str] = []
    try:
        pool.submit(gate.wait, WAIT)
        skipped = pool.submit(ran.append, "skipped")
        assert skipped.cancel()
        gate.set()
        assert pool.submit(ran.append, "next").result(WAIT) is None
        assert ran == ["next"]
    finally:
        gate.set()
        pool.shutdown()


def test_shutdown_waits_for_running_work(pool: ExitSafeExecutor) -> None:
    finished = threading.Event()
    pool.submit(lambda: (threading.Event().wait(0.05), finished.set()))
    pool.shutdown(wait=True)
    assert finished.is_set()


def test_the_worker_starts_one_daemon_loop_thread_on_first_use(own_worker: BackgroundWorker) -> None:
    assert not own_worker.in_worker_thread()
    loop = own_worker.loop
    assert loop.is_running() and own_worker.loop is loop
    thread = own_worker.submit(_current_thread()).result(WAIT)
    assert thread.name == "streamll-worker" and thread.daemon and thread is not threading.current_thread()
    assert not own_worker.in_worker_thread()


async def _current_thread() -> threading.Thread:
    return threading.current_thread()


def test_code_on_the_worker_knows_it_runs_there(own_worker: BackgroundWorker) -> None:
    async def check() -> bool:
        return own_worker.in_worker_thread()

    assert own_worker.submit(check()).result(WAIT) is True


def test_call_soon_runs_the_callback_with_its_arguments_on_the_worker(own_worker: BackgroundWorker) -> None:
    seen: list[tuple[str, int, bool]] = []
    done = threading.Event()

    def callback(word: str, number: int) -> None:
        seen.append((word, number, own_worker.in_worker_thread()))
        done.set()

    own_worker.call_soon(callback, "hi", 3)
    assert done.wait(WAIT)
    assert seen == [("hi", 3, True)]


def test_blocking_work_from_the_loop_runs_on_the_exit_safe_pool(own_worker: BackgroundWorker) -> None:
    async def offload() -> str:
        return await asyncio.to_thread(lambda: threading.current_thread().name)

    assert own_worker.submit(offload()).result(WAIT).startswith("streamll-io-")


def test_a_stopped_loop_thread_is_replaced_on_next_use(own_worker: BackgroundWorker) -> None:
    first = own_worker.loop
    _stop(own_worker)
    assert own_worker.loop is not first
    assert own_worker.submit(_current_thread()).result(WAIT).is_alive()


def test_after_a_fork_the_worker_starts_afresh(own_worker: BackgroundWorker) -> None:
    first = own_worker.loop
    own_worker._forget_after_fork()  # what the fork hook does in the child
    assert not own_worker.in_worker_thread()
    assert own_worker.loop is not first
    first.call_soon_threadsafe(first.stop)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_runs_work_on_a_worker_of_its_own() -> None:
    parent_thread = worker.submit(_current_thread()).result(WAIT)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 1
        try:
            thread = worker.submit(_current_thread()).result(WAIT)
            status = 0 if thread is not parent_thread and thread.is_alive() else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_exit_timeout_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EXIT_TIMEOUT_ENV, raising=False)
    assert exit_timeout() == DEFAULT_EXIT_TIMEOUT == 10.0
    monkeypatch.setenv(EXIT_TIMEOUT_ENV, "2.5")
    assert exit_timeout() == 2.5
    monkeypatch.setenv(EXIT_TIMEOUT_ENV, "soon")
    assert exit_timeout() == 10.0
