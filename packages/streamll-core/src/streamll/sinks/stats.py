"""Counters every sink keeps, so nothing is lost silently."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class SinkStats:
    """What happened to the events handed to one sink.

    ``received = delivered + failed + dropped + queued + in spill`` whenever no batch is
    completing at that very moment.
    """

    received: int = 0
    """Events handed to the sink by ``emit``."""
    delivered: int = 0
    """Events written to the destination (acknowledged where the transport acknowledges)."""
    dropped: int = 0
    """Events discarded because the buffer was full (overflow policy) or the sink was stopped undrained."""
    failed: int = 0
    """Events that cannot be written (``handle_event`` raised, not encodable, refused for good); not retried."""
    spilled: int = 0
    """Events written to the spill file because the buffer was full."""
    replayed: int = 0
    """Spilled events read back and re-queued."""
    retries: int = 0
    """Write attempts repeated after a transport error."""
    write_errors: int = 0
    """Transport errors seen (each is followed by a retry with backoff)."""
    reconnects: int = 0
    """Times the sink re-opened its connection after an error."""
    batches: int = 0
    """Successful batch writes."""
    queued: int = 0
    """Events in memory right now: buffered, being written, or awaiting a retry."""
    queued_bytes: int = 0
    """Estimated bytes of the buffered events (what ``buffer_bytes`` bounds)."""
    last_error: str | None = None
    """Text of the most recent error, for ``streamll stats`` and logs."""

    def as_dict(self) -> dict[str, object]:
        """The counters as a plain dict."""
        return asdict(self)


__all__ = ["SinkStats"]
