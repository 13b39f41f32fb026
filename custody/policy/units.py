"""An amount bound counts base units of one asset, so a rule with one must say which asset.

"1000000" is 1 USDC but 0.000000000001 ETH. A bound without `assets` compared the base units of
whatever a request moved: `amount_lte: "1000000000000000000"` (1 ETH) also let a transfer of
10**12 USDC (a million dollars) through. Bounds on value (`amount_usd_*`) need no asset.

A new file with such a bound is refused. A version applied before this rule is still loaded (its
history must stay readable), but its unnamed bound judges nothing: it denies, in its rule's name,
until a version that names the asset is applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from custody.policy.context import UNKNOWN, EvaluationContext, Undecidable
from custody.policy.facts import RequestFacts
from custody.policy.references import Loc, LocatedProblem

AMOUNT_KEYS = ("amount_lte", "amount_lt", "amount_gte", "amount_gt", "fee_lte", "fee_gt")


class _Rule(Protocol):
    # Structural, like custody.policy.references: custody.policy.schema calls this from its
    # validator, so importing the schema here would be a cycle.
    @property
    def match(self) -> object: ...


class _Policy(Protocol):
    @property
    def rules(self) -> Sequence[_Rule]: ...


def names_one_asset(match: object) -> bool:
    return len(getattr(match, "assets", None) or ()) == 1


def amount_unit_problems(policy: _Policy) -> list[LocatedProblem]:
    problems: list[LocatedProblem] = []
    for index, rule in enumerate(policy.rules):
        if names_one_asset(rule.match):
            continue
        assets: tuple[str, ...] = getattr(rule.match, "assets", None) or ()
        for key in AMOUNT_KEYS:
            if getattr(rule.match, key, None) is not None:
                loc: Loc = ("rules", index, "match", key)
                problems.append((loc, _message(key, assets)))
    return problems


@dataclass(frozen=True, slots=True)
class UnnamedAssetBound:
    """An amount bound of a stored version whose rule names no single asset: fail closed."""

    key: str

    def __call__(self, facts: RequestFacts, context: EvaluationContext = UNKNOWN) -> bool:
        raise Undecidable(
            f"{self.key} counts base units of one asset and this rule names none "
            "(apply a version that names it in assets)"
        )

    def explain(self, facts: RequestFacts, context: EvaluationContext) -> str | None:
        return None  # never reached: __call__ raises


def _message(key: str, assets: tuple[str, ...]) -> str:
    if key.startswith("fee_"):
        return "counts base units of one asset: name the chain's native asset with assets: [SYMBOL]"
    usd = key.replace("amount_", "amount_usd_")
    if not assets:
        return (
            "counts base units of one asset: name it with assets: [SYMBOL] "
            f"(or bound the USD value with {usd})"
        )
    return (
        f"counts base units of one asset, but assets lists {len(assets)} ({', '.join(assets)}): "
        f"write one rule per asset (or bound the USD value with {usd})"
    )
