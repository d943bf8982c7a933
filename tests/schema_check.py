"""pytest plugin: every event the test suite hands to a sink must match the wire format schema.

Every event reaches its sinks through :meth:`streamll.sinks.base.BaseSink.enqueue`,
so the plugin wraps that method for the session and records each event. After
each test the recorded events are encoded exactly as sinks encode them and
validated against ``streamll/schema/event.v1.json``; a test whose events do not
match errors at teardown, naming the violations. Validation happens then rather
than inside ``enqueue`` so the hot path's timing in tests stays what it is.

A test that hands deliberately broken events to a sink opts out with
``@pytest.mark.invalid_events_expected``. The terminal summary reports how many
events were validated.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from streamll.core.events import Event
    from streamll.sinks.base import BaseSink

MARKER = "invalid_events_expected"
SHOWN_ERRORS = 5
SAMPLE_AFTER = 1_000
"""Past this many events in one test (a load test's burst), every 1000th is validated: a sample, not all."""


class WireFormatCheck:
    """Records the events sinks receive and validates them against the v1 schema."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[int, Event] = {}
        self._seen = 0
        self._original: object | None = None
        self.validated = 0
        self.failures: list[tuple[str, str]] = []
        """(where, message) for every invalid event that failed the run, in the order found."""

    def install(self) -> None:
        """Wrap ``BaseSink.enqueue`` so every event handed to any sink is recorded."""
        from streamll.schema import validator
        from streamll.sinks.base import BaseSink

        validator()  # compile once, and fail the run early if the schema itself is broken
        original = BaseSink.enqueue
        record = self._record

        @functools.wraps(original)
        def enqueue(sink: BaseSink, event: Event) -> None:
            record(event)
            original(sink, event)

        self._original = original
        BaseSink.enqueue = enqueue  # type: ignore[method-assign]

    def uninstall(self) -> None:
        """Put the original ``enqueue`` back."""
        from streamll.sinks.base import BaseSink

        if self._original is not None:
            BaseSink.enqueue = self._original  # type: ignore[method-assign]
            self._original = None

    def _record(self, event: Event) -> None:
        # keyed by id: an event fanned out to several sinks is validated once
        with self._lock:
            self._seen += 1
            if self._seen <= SAMPLE_AFTER or self._seen % 1000 == 0:
                self._pending[id(event)] = event

    def check(self) -> list[str]:
        """Validate everything recorded since the last check; one message per invalid event."""
        from streamll.core.serialization import event_to_dict
        from streamll.schema import schema_errors, validator

        with self._lock:
            events, self._pending = list(self._pending.values()), {}
            self._seen = 0
        compiled = validator()
        messages: list[str] = []
        for event in events:
            try:
                body = event_to_dict(event)
            except Exception as exc:  # encoding must never fail; report it like a schema violation
                problems = [f"cannot encode: {type(exc).__name__}: {exc}"]
            else:
                problems = [] if compiled.is_valid(body) else schema_errors(body)
            if problems:
                messages.append(f"{event.event_type!r} event {event.event_id}: " + "; ".join(problems))
        self.validated += len(events)
        return messages


_check = WireFormatCheck()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: the test hands deliberately invalid events to sinks; skip the wire format check"
    )
    try:
        _check.install()
    except ImportError as exc:
        raise pytest.UsageError(f"tests.schema_check: {exc}") from exc


def pytest_unconfigure(config: pytest.Config) -> None:
    _check.uninstall()


@pytest.fixture(autouse=True)
def _wire_format_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test at teardown when an event it produced does not match the wire format schema."""
    yield
    messages = _check.check()
    if messages and request.node.get_closest_marker(MARKER) is None:
        _check.failures.extend((request.node.nodeid, message) for message in messages)
        shown = "\n  ".join(messages[:SHOWN_ERRORS])
        more = f"\n  ... and {len(messages) - SHOWN_ERRORS} more" if len(messages) > SHOWN_ERRORS else ""
        pytest.fail(
            f"{len(messages)} event(s) do not match streamll/schema/event.v1.json:\n  {shown}{more}", pytrace=False
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Events produced outside any test (session fixtures, shutdown) are checked too."""
    messages = _check.check()
    _check.failures.extend(("outside tests", message) for message in messages)
    if messages and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    failures = _check.failures
    terminalreporter.write_line(
        f"wire format: {_check.validated} events validated against event.v1.json, {len(failures)} invalid"
    )
    for where, message in failures[:SHOWN_ERRORS]:
        terminalreporter.write_line(f"  {where}: {message}", red=True)
