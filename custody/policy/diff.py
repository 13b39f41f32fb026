"""`custody policy diff A B`: what changed between two policies, by meaning, not by text.

Rules, limits and breakers are compared by id on their parsed form (so layout, comments, `24h`
versus `1d` and signatures versus selectors do not count); allowlist entries by (list, chain,
address).
Rule order is reported too: with first-match-wins, moving a rule can change every decision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from custody.policy.loader import LoadedPolicy
from custody.policy.schema import AllowlistEntry


@dataclass(frozen=True)
class Section:
    added: list[Any] = field(default_factory=list)
    removed: list[Any] = field(default_factory=list)
    changed: list[Any] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


@dataclass(frozen=True)
class PolicyDiff:
    digests: tuple[str, str]
    rules: Section
    rule_order_changed: bool
    allowlists: Section
    limits: Section
    breakers: Section

    @property
    def identical(self) -> bool:
        return self.digests[0] == self.digests[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.digests[0],
            "b": self.digests[1],
            "identical": self.identical,
            "rules": vars(self.rules),
            "rule_order_changed": self.rule_order_changed,
            "allowlists": vars(self.allowlists),
            "limits": vars(self.limits),
            "breakers": vars(self.breakers),
        }

    def lines(self) -> list[str]:
        if self.identical:
            return ["policies are identical (same digest)"]
        out = [f"+ rule {i}" for i in self.rules.added]
        out += [f"- rule {i}" for i in self.rules.removed]
        out += [f"~ rule {c['id']}: {', '.join(c['keys'])} changed" for c in self.rules.changed]
        out += ["~ rule order changed"] if self.rule_order_changed else []
        out += [f"+ allowlist {_entry(e)}" for e in self.allowlists.added]
        out += [f"- allowlist {_entry(e)}" for e in self.allowlists.removed]
        out += [
            f"~ allowlist {_entry(e)}: label or activation delay" for e in self.allowlists.changed
        ]
        out += [f"+ limit {i}" for i in self.limits.added]
        out += [f"- limit {i}" for i in self.limits.removed]
        out += [f"~ limit {c['id']}: {', '.join(c['keys'])} changed" for c in self.limits.changed]
        out += [f"+ breaker {i}" for i in self.breakers.added]
        out += [f"- breaker {i}" for i in self.breakers.removed]
        out += [
            f"~ breaker {c['id']}: {', '.join(c['keys'])} changed" for c in self.breakers.changed
        ]
        return out or ["no semantic change (only descriptions or spelling differ)"]


def _entry(entry: dict[str, Any]) -> str:
    return f"{entry['list']}: {entry['chain']} {entry['address']} ({entry['label']})"


def diff_policies(a: LoadedPolicy, b: LoadedPolicy) -> PolicyDiff:
    rules_a = {r.id: r.model_dump(mode="json", exclude_none=True) for r in a.policy.rules}
    rules_b = {r.id: r.model_dump(mode="json", exclude_none=True) for r in b.policy.rules}
    limits_a = {x.id: x.model_dump(mode="json", exclude_none=True) for x in a.policy.limits}
    limits_b = {x.id: x.model_dump(mode="json", exclude_none=True) for x in b.policy.limits}
    breakers_a = {
        x.id: x.model_dump(mode="json", exclude_none=True) for x in a.policy.breakers or ()
    }
    breakers_b = {
        x.id: x.model_dump(mode="json", exclude_none=True) for x in b.policy.breakers or ()
    }
    kept_a = [i for i in rules_a if i in rules_b]
    kept_b = [i for i in rules_b if i in rules_a]
    return PolicyDiff(
        digests=(a.digest, b.digest),
        rules=_by_id(rules_a, rules_b, ignore={"description"}),
        rule_order_changed=kept_a != kept_b,
        allowlists=_entries(a, b),
        limits=_by_id(limits_a, limits_b, ignore=set()),
        breakers=_by_id(breakers_a, breakers_b, ignore={"description"}),
    )


def _by_id(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]], ignore: set[str]) -> Section:
    changed = []
    for ident in (i for i in b if i in a):
        both = (a[ident].keys() | b[ident].keys()) - ignore
        keys = sorted(k for k in both if a[ident].get(k) != b[ident].get(k))
        if keys:
            changed.append({"id": ident, "keys": keys, "a": a[ident], "b": b[ident]})
    return Section(
        added=[i for i in b if i not in a], removed=[i for i in a if i not in b], changed=changed
    )


def _entries(a: LoadedPolicy, b: LoadedPolicy) -> Section:
    def index(policy: LoadedPolicy) -> dict[tuple[str, str, str], dict[str, Any]]:
        return {
            (name, e.chain, e.address.lowercase): _entry_dict(name, e)
            for name, entries in policy.policy.allowlists.items()
            for e in entries
        }

    old, new = index(a), index(b)
    return Section(
        added=[new[k] for k in new if k not in old],
        removed=[old[k] for k in old if k not in new],
        changed=[new[k] for k in new if k in old and new[k] != old[k]],
    )


def _entry_dict(name: str, entry: AllowlistEntry) -> dict[str, Any]:
    return {"list": name, **entry.model_dump(mode="json", exclude_none=True)}
