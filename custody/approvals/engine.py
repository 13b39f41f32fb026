"""The quorum engine: which approvals count towards which group requirement. Pure, no database.

Request approvals (custody.approvals.quorum) and policy governance
(custody.approvals.policy_approvals) both count here, so the two can never disagree.

The rules: an approver counts at most once, towards at most one requirement, and only for a group
they are in now. Among all assignments that obey them, the engine takes one that counts as many
approvals as possible. A greedy pass ("first requirement of theirs still short") is not enough
with `all_of`: if A is in treasury and risk and B only in treasury, A must count for risk, or a
quorum that exists is missed. So this is a small bipartite b-matching, solved with augmenting
paths (approvers on one side, requirements with `count` slots on the other).

Approvers are taken in the order given (approval order), and an approver once counted is never
uncounted by a later one, only moved to another requirement if that makes room. So the approvers
counted are the earliest ones that can count, and a further approval (with groups unchanged)
never makes someone stop counting.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from custody.approvals.schemas import QuorumRequirementView, QuorumView


@dataclass(frozen=True)
class Requirement:
    """`count` distinct approvers from `group`."""

    group: str
    count: int

    def __post_init__(self) -> None:
        if not isinstance(self.group, str) or not self.group:
            raise ValueError(f"a requirement needs a group name, got {self.group!r}")
        # bool is an int subclass; True as a count is a bug upstream, not 1.
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"a requirement needs a count of at least 1, got {self.count!r}")


@dataclass(frozen=True)
class Vote:
    """One approval to count: who gave it and the groups they are in now (not when they voted)."""

    approver_id: str
    name: str
    groups: frozenset[str]


@dataclass(frozen=True)
class QuorumState:
    requirements: tuple[Requirement, ...]
    approved_by: dict[str, tuple[str, ...]]
    """group -> names of approvers whose approval counts for it now, in approval order."""

    @property
    def met(self) -> bool:
        return all(len(self.approved_by.get(r.group, ())) >= r.count for r in self.requirements)

    @property
    def counted(self) -> int:
        return sum(len(names) for names in self.approved_by.values())

    def view(self) -> QuorumView:
        return QuorumView(
            required=[
                QuorumRequirementView(group=r.group, count=r.count) for r in self.requirements
            ],
            received={g: list(names) for g, names in sorted(self.approved_by.items())},
            met=self.met,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "required": [{"group": r.group, "count": r.count} for r in self.requirements],
            "received": {g: list(names) for g, names in sorted(self.approved_by.items())},
            "met": self.met,
        }


def merge_requirements(requirements: Iterable[Requirement]) -> tuple[Requirement, ...]:
    """One requirement per group, in first-seen order; a group listed twice adds up.

    Policies refuse a group listed twice, but stored decisions are read back from JSON. Two
    entries for one group would ask one pool of people for two quorums; since an approver counts
    once, the only sound reading is that many distinct approvers in total.
    """
    counts: dict[str, int] = {}
    for requirement in requirements:
        counts[requirement.group] = counts.get(requirement.group, 0) + requirement.count
    return tuple(Requirement(group, count) for group, count in counts.items())


def parse_requirements(items: Iterable[Mapping[str, Any]]) -> tuple[Requirement, ...]:
    """Requirements from stored JSON ([{group, count}, ...]), merged; refuses an empty list.

    Raises ValueError: an empty list would read as "nothing required" and approve at once, so a
    stored requirement that lost its quorums must fail closed instead.
    """
    requirements = merge_requirements(Requirement(item["group"], item["count"]) for item in items)
    if not requirements:
        raise ValueError("an approval requirement needs at least one group quorum")
    return requirements


def count_quorum(requirements: Iterable[Requirement], votes: Sequence[Vote]) -> QuorumState:
    """The most approvals that can count towards `requirements`, and whether that meets them.

    `votes` in approval order; a second vote by the same approver id is ignored.
    """
    merged = merge_requirements(requirements)
    distinct = _first_vote_per_approver(votes)
    assigned = _assign(merged, distinct)
    approved_by = {
        requirement.group: tuple(
            vote.name for vote, slot in zip(distinct, assigned, strict=True) if slot == index
        )
        for index, requirement in enumerate(merged)
    }
    return QuorumState(merged, approved_by)


def _first_vote_per_approver(votes: Sequence[Vote]) -> tuple[Vote, ...]:
    seen: set[str] = set()
    distinct: list[Vote] = []
    for vote in votes:
        if vote.approver_id not in seen:
            seen.add(vote.approver_id)
            distinct.append(vote)
    return tuple(distinct)


def _assign(requirements: tuple[Requirement, ...], votes: tuple[Vote, ...]) -> list[int | None]:
    """For each vote, the index of the requirement it counts towards, or None."""
    eligible = [
        [index for index, r in enumerate(requirements) if r.group in vote.groups] for vote in votes
    ]
    assigned: list[int | None] = [None] * len(votes)
    holders: list[list[int]] = [[] for _ in requirements]
    # Augmenting one vote at a time, in order, is what keeps earlier approvers counted: a path
    # only ever moves votes already counted, it never uncounts one.
    for vote in range(len(votes)):
        path = _augmenting_path(vote, requirements, eligible, holders)
        for mover, source, target in path:
            if source is not None:
                holders[source].remove(mover)
            holders[target].append(mover)
            assigned[mover] = target
    return assigned


Move = tuple[int, int | None, int]
"""(vote, requirement it leaves or None for the new vote, requirement it joins)."""


def _augmenting_path(
    vote: int,
    requirements: tuple[Requirement, ...],
    eligible: list[list[int]],
    holders: list[list[int]],
) -> list[Move]:
    """The moves that make room for `vote`, or [] if none can.

    Breadth-first, so the path is a shortest one: as few counted approvers as possible change
    requirement, which keeps `received` from shuffling more than it must.
    """
    reached: dict[int, tuple[int, int | None]] = {}
    queue: deque[int] = deque()
    for target in eligible[vote]:
        if target not in reached:
            reached[target] = (vote, None)
            queue.append(target)
    while queue:
        current = queue.popleft()
        if len(holders[current]) < requirements[current].count:
            return _moves_to(current, reached)
        for holder in sorted(holders[current]):
            for target in eligible[holder]:
                if target not in reached:
                    reached[target] = (holder, current)
                    queue.append(target)
    return []


def _moves_to(free: int, reached: dict[int, tuple[int, int | None]]) -> list[Move]:
    """Walks back from the requirement with a free slot to the new vote."""
    moves: list[Move] = []
    target: int | None = free
    while target is not None:
        mover, source = reached[target]
        moves.append((mover, source, target))
        target = source
    return moves
