"""Circuit breakers as written in a policy file: conditions that freeze signing by themselves.

```yaml
breakers:
  - id: probing-client
    denied_requests: {max_count: 5, window: 10m}     # a 6th denial within 10 minutes trips it
  - id: hot-eth-spike
    velocity: {wallets: [hot-*], asset: ETH, window: 1h, max_amount: "50000000000000000000"}
```

A `denied_requests` breaker counts the requests the policy denied for one client; when there are
more than `max_count` within `window`, it freezes the whole installation (a client that keeps
asking for what the policy refuses is a client whose key may be in the wrong hands, and the next
thing it asks for need not be in the same wallet). A `velocity` breaker adds up what the requests
for one wallet ask for, in one asset, that the policy did not deny; above `max_amount` within
`window` it freezes that wallet. What a breaker counts, and where it is counted, is
custody.freezes.breakers; this module is the file format only (pure, like the rest of policy).
"""

from __future__ import annotations

import fnmatch
from typing import Annotated

from pydantic import AfterValidator, Field, StrictInt, StrictStr, model_validator
from pydantic_core import PydanticCustomError

from custody.chains.values import Amount
from custody.policy.model import Globs, PolicyModel, non_empty
from custody.policy.values import DurationSeconds, Name

_MIN_WINDOW, _MAX_WINDOW = 60, 31 * 86_400
LEDGER_CONSISTENCY, SIGNATURE_CHECK = "ledger-consistency", "signature-check"
CONFIGURATION_SEAL, LIMIT_EVIDENCE = "configuration-seal", "limit-evidence"
FREEZE_RECORDS = "freeze-records"
BUILT_IN = (CONFIGURATION_SEAL, FREEZE_RECORDS, LEDGER_CONSISTENCY, LIMIT_EVIDENCE, SIGNATURE_CHECK)
"""Breakers every installation has (custody.freezes.breakers); a policy may not reuse the ids."""


def _window(seconds: int) -> int:
    if not _MIN_WINDOW <= seconds <= _MAX_WINDOW:
        raise PydanticCustomError("breaker_window", "window must be between 1m and 31d")
    return seconds


Window = Annotated[DurationSeconds, AfterValidator(_window)]


class DeniedRequests(PolicyModel):
    """More than `max_count` requests of one client denied by the policy within `window`."""

    max_count: Annotated[StrictInt, Field(ge=1, le=1_000_000)]
    window: Window


class Velocity(PolicyModel):
    """More than `max_amount` base units of `asset` asked for from one wallet within `window`.

    `wallets` (names or globs) narrows which wallets are watched; each is counted on its own.
    """

    asset: Name
    max_amount: Amount
    window: Window
    wallets: Globs | None = None

    def watches(self, wallet: str) -> bool:
        if self.wallets is None:
            return True
        # Case-sensitive, as rules match wallets (custody.policy.predicates.FactMatchesGlob).
        return any(fnmatch.fnmatchcase(wallet, glob) for glob in self.wallets)


class Breaker(PolicyModel):
    id: Name
    description: Annotated[StrictStr, Field(max_length=500)] | None = None
    denied_requests: DeniedRequests | None = None
    velocity: Velocity | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> Breaker:
        given = [key for key in ("denied_requests", "velocity") if getattr(self, key) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "breaker_kind", "a breaker needs exactly one of denied_requests or velocity"
            )
        if self.id in BUILT_IN:
            raise PydanticCustomError(
                "breaker_builtin",
                "id {id} is a built-in breaker's (always on); choose another id",
                {"id": self.id},
            )
        return self


def _distinct_ids(breakers: tuple[Breaker, ...]) -> tuple[Breaker, ...]:
    seen: dict[str, int] = {}
    for index, breaker in enumerate(breakers):
        if breaker.id in seen:
            raise PydanticCustomError(
                "duplicate_breaker",
                "duplicate id {id} (breakers[{first}] and breakers[{index}])",
                {"id": breaker.id, "first": seen[breaker.id], "index": index},
            )
        seen[breaker.id] = index
    return breakers


Breakers = Annotated[tuple[Breaker, ...], AfterValidator(non_empty), AfterValidator(_distinct_ids)]
