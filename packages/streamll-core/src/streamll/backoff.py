"""The one retry policy of sinks and consumers: exponential backoff, capped, with jitter.

Every reconnect or retried write waits ``Backoff(first, cap).delay(attempt)``:
``first`` doubling per attempt up to ``cap``, each delay spread by +-``jitter``
(and never over ``cap``) so many producers that lost the same broker do not
come back in step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter."""

    first: float = 0.05
    """Seconds before the first retry."""
    cap: float = 1.0
    """Longest wait, however many attempts failed."""
    jitter: float = 0.25
    """Each delay is spread uniformly by this fraction either way."""

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1 is the first retry)."""
        base = min(self.first * 2 ** min(max(attempt - 1, 0), 32), self.cap)
        return min(self.cap, base * random.uniform(1 - self.jitter, 1 + self.jitter))


__all__ = ["Backoff"]
