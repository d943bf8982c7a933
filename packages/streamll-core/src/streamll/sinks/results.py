"""What a transport reports for one batch: how many events it delivered, and which it refused for good.

A transport's :meth:`~streamll.sinks.base.BaseSink.write_batch` (or the
completion :meth:`~streamll.sinks.base.BaseSink.send_batch` returns) gives a
:class:`BatchResult`; the sink machinery counts it in ``stats`` and logs the
reasons. Raising instead means "retry the whole batch" (a connection lost, an
ack that never came).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class BatchResult:
    """The outcome of writing one batch."""

    delivered: int
    """Events the destination accepted."""
    rejected: tuple[str, ...] = ()
    """One reason per event the destination refused for good (too large, say): counted as failed, not retried."""

    @classmethod
    def of(cls, delivered: int, rejected: Iterable[str] = ()) -> BatchResult:
        """``BatchResult(delivered, tuple(rejected))``."""
        return cls(delivered, tuple(rejected))


__all__ = ["BatchResult"]
