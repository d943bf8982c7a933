"""The one retry policy: doubling from ``first``, never over ``cap``, spread by jitter."""

from __future__ import annotations

import statistics

from streamll.backoff import Backoff


def test_delays_double_up_to_the_cap_and_never_exceed_it() -> None:
    policy = Backoff(first=0.1, cap=1.0, jitter=0.25)
    medians = [statistics.median(policy.delay(attempt) for _ in range(400)) for attempt in range(1, 8)]
    assert 0.09 < medians[0] < 0.11 and 0.18 < medians[1] < 0.22 and 0.36 < medians[2] < 0.44
    assert all(policy.delay(attempt) <= 1.0 for attempt in range(1, 200) for _ in range(20))
    assert medians[-1] > 0.9


def test_jitter_spreads_delays_so_producers_do_not_retry_in_step() -> None:
    delays = {round(Backoff(first=0.2, cap=5.0).delay(3), 6) for _ in range(50)}
    assert len(delays) > 40 and min(delays) >= 0.6 and max(delays) <= 1.0


def test_no_jitter_gives_the_exact_schedule() -> None:
    policy = Backoff(first=0.05, cap=0.3, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.05, 0.1, 0.2, 0.3, 0.3]
