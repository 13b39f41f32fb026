"""The restart delay: doubling per quick death in a row, capped, jittered, never zero."""

from __future__ import annotations

import random

from custody.processes.backoff import FIRST_DELAY, Backoff


def test_the_delay_doubles_up_to_the_cap_with_jitter_of_at_most_half() -> None:
    backoff = Backoff(cap=30.0, rng=random.Random(7))
    for deaths in range(1, 40):
        ceiling = min(30.0, FIRST_DELAY * 2 ** (deaths - 1))
        delays = [backoff.delay(deaths) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (deaths, delays)
        assert len(set(delays)) > 1  # jittered: children restarted together spread out


def test_a_crash_loop_is_slowed_down_to_the_cap() -> None:
    backoff = Backoff(cap=12.0)
    assert backoff.delay(1) <= FIRST_DELAY
    assert backoff.delay(1000) >= 6.0  # huge counts neither overflow nor go below half the cap
