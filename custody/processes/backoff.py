"""How long the supervisor waits before starting a child that died again.

A child that dies at once (a database that refuses connections, a broken module) must not be
restarted in a tight loop: each start costs a login to the HSM, and a real HSM counts failed
logins. The delay doubles with each quick death in a row up to a cap; a child that ran a while
before dying starts again from the first delay. Jitter keeps the children of several hosts,
restarted together after one outage, from coming back in lockstep.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

FIRST_DELAY = 0.5
# A child that ran this long was healthy: its death is not part of a crash loop.
STABLE_SECONDS = 10.0


@dataclass
class Backoff:
    cap: float
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, deaths_in_a_row: int) -> float:
        """Seconds before the next start; `deaths_in_a_row` counts this one (1 or more)."""
        ceiling = min(self.cap, FIRST_DELAY * 2.0 ** min(deaths_in_a_row - 1, 32))
        # "Equal jitter": at least half the ceiling, so a crash loop is always slowed down.
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)
