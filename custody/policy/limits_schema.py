"""Velocity limits as written in a policy file.

Two spellings: the short form of DESIGN.md (`{id, wallets, asset, window, max_amount}`) and the
scoped form (`{id, window, scope: {wallets, assets, chains, clients}, max_amount | max_count,
on_exceed}`). Both stay as written in the model, so the digest of a file using the short form is
the same as before scopes existed. `on_exceed` left out means deny.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictInt, model_validator
from pydantic_core import PydanticCustomError

from custody.chains.values import Amount
from custody.policy.actions import ActionKind, OnExceed
from custody.policy.model import Globs, Names, PolicyModel
from custody.policy.values import DurationSeconds, Name

_MAX_WINDOW = 31 * 86_400
_DENY = OnExceed.model_validate(ActionKind.DENY.value)


class LimitScope(PolicyModel):
    """Which requests count towards the limit; a key left out does not narrow it."""

    wallets: Globs | None = None
    assets: Names | None = None
    chains: Names | None = None
    clients: Names | None = None


class Limit(PolicyModel):
    id: Name
    wallets: Globs | None = None
    asset: Name | None = None
    scope: LimitScope | None = None
    window: DurationSeconds
    max_amount: Amount | None = None
    max_count: Annotated[StrictInt, Field(ge=1, le=1_000_000)] | None = None
    on_exceed: OnExceed | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Limit:
        short = self.wallets is not None or self.asset is not None
        if short and self.scope is not None:
            raise _problem("write either wallets/asset or scope, not both")
        if not short and self.scope is None:
            raise _problem("needs a scope (or the short form wallets and asset)")
        if self.max_amount is None and self.max_count is None:
            raise _problem("needs max_amount or max_count")
        if self.max_amount is not None and len(self.assets or ()) != 1:
            # Adding base units of different assets (wei and USDC cents) means nothing.
            raise _problem("max_amount needs exactly one asset to count in")
        if not 60 <= self.window <= _MAX_WINDOW:
            raise _problem("window must be between 1m and 31d")
        return self

    @property
    def scope_or_short(self) -> LimitScope:
        if self.scope is not None:
            return self.scope
        assets = (self.asset,) if self.asset is not None else None
        return LimitScope(wallets=self.wallets, assets=assets)

    @property
    def assets(self) -> tuple[str, ...] | None:
        if self.scope is not None:
            return self.scope.assets
        return None if self.asset is None else (self.asset,)

    @property
    def on_exceed_action(self) -> OnExceed:
        return self.on_exceed or _DENY


def _problem(message: str) -> PydanticCustomError:
    return PydanticCustomError("limit", message)
