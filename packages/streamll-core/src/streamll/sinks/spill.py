"""Spill-to-disk overflow: events that do not fit in memory wait in a local file.

While the file holds events, new events are appended to it as well, so the
order of delivery stays the order of emission; the sink replays the file
(oldest first) as soon as its buffer has room again. Events an earlier run
left in an explicit ``spill_path`` are delivered first.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path

from streamll.core.events import Event
from streamll.core.records import TokenRecord
from streamll.core.serialization import decode_event, encode_event
from streamll.errors import MalformedEventError

logger = logging.getLogger("streamll")


class SpillFile:
    """An append-only JSON-lines file read back from the front."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, name: str = "sink") -> None:
        """Open ``path`` (default: a new temp file); events an earlier run left there are delivered first."""
        if path is None:
            directory = Path(tempfile.gettempdir()) / "streamll-spill"
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"{name}-{os.getpid()}-{id(self):x}.jsonl"
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._read_offset = 0
        self.pending = self._adopt_leftovers()
        self._writer = open(self.path, "ab")  # noqa: SIM115 - kept open for the sink's lifetime
        if self.pending:
            logger.warning(
                "streamll: spill file %s holds %d event(s) from an earlier run; they are delivered first",
                self.path,
                self.pending,
            )

    def _adopt_leftovers(self) -> int:
        """Count the events an earlier run left in the file; a line cut short by a crash is removed."""
        try:
            content = self.path.read_bytes()
        except FileNotFoundError:
            return 0
        complete = content.rfind(b"\n") + 1
        if complete < len(content):
            with open(self.path, "r+b") as file:
                file.truncate(complete)
        return content.count(b"\n")  # the last newline ends the last complete line

    def append(self, event: Event | TokenRecord) -> None:
        """Write one event to the end of the file."""
        line = encode_event(event) + b"\n"
        with self._lock:
            self._writer.write(line)
            self._writer.flush()
            self.pending += 1

    def read(self, limit: int) -> list[Event]:
        """Remove and return up to ``limit`` events from the front of the file."""
        events: list[Event] = []
        with self._lock:
            if not self.pending:
                return events
            with open(self.path, "rb") as reader:
                reader.seek(self._read_offset)
                while len(events) < limit:
                    line = reader.readline()
                    if not line:
                        break
                    self._read_offset += len(line)
                    self.pending -= 1
                    try:
                        events.append(decode_event(line))
                    except MalformedEventError:
                        logger.error("streamll: skipped an unreadable line in spill file %s", self.path)
            if self.pending <= 0:
                self.pending = 0
                self._read_offset = 0
                self._writer.truncate(0)  # opened for appending: the next write goes to the (new) end
        return events

    def put_back(self, events: list[Event]) -> None:
        """Write ``events`` in front of what the file still holds (a stopping sink's in-memory buffer)."""
        self.put_back_bodies([encode_event(event) for event in events])

    def put_back_bodies(self, bodies: list[bytes]) -> None:
        """Write encoded event bodies in front of what the file still holds, in order."""
        if not bodies:
            return
        lines = b"".join(body + b"\n" for body in bodies)
        with self._lock:
            self._writer.flush()
            with open(self.path, "rb") as reader:
                reader.seek(self._read_offset)
                rest = reader.read()
            staging = self.path.with_name(self.path.name + ".tmp")
            with open(staging, "wb") as file:
                file.write(lines + rest)
                file.flush()
                os.fsync(file.fileno())
            self._writer.close()
            os.replace(staging, self.path)
            self._writer = open(self.path, "ab")  # noqa: SIM115 - kept open for the sink's lifetime
            self._read_offset = 0
            self.pending += len(bodies)

    def close(self, *, remove: bool = True) -> None:
        """Close the file; remove it when nothing is left in it."""
        with self._lock:
            self._writer.close()
            if remove and not self.pending:
                self.path.unlink(missing_ok=True)


__all__ = ["SpillFile"]
