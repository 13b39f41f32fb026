"""The quorum engine (custody.approvals.engine): known cases, and a property test against a
brute-force search over every assignment of approvers to requirements."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from custody.approvals.engine import (
    QuorumState,
    Requirement,
    Vote,
    count_quorum,
    merge_requirements,
    parse_requirements,
)


def vote(name: str, *groups: str) -> Vote:
    return Vote(approver_id=f"id-{name}", name=name, groups=frozenset(groups))


TREASURY_AND_RISK = (Requirement("treasury", 1), Requirement("risk", 1))


def test_an_approver_in_both_groups_is_moved_to_where_only_they_can_count() -> None:
    # A greedy pass counts A for treasury (first requirement) and then has nowhere for B.
    state = count_quorum(TREASURY_AND_RISK, [vote("A", "treasury", "risk"), vote("B", "treasury")])
    assert state.met
    assert state.approved_by == {"treasury": ("B",), "risk": ("A",)}


def test_a_longer_chain_of_moves_is_found() -> None:
    reqs = (Requirement("a", 1), Requirement("b", 1), Requirement("c", 1))
    # X takes a and Y takes b; Z fits only a, so X must go to b and Y to c.
    state = count_quorum(reqs, [vote("X", "a", "b"), vote("Y", "b", "c"), vote("Z", "a")])
    assert state.met
    assert state.approved_by == {"a": ("Z",), "b": ("X",), "c": ("Y",)}


def test_one_person_in_both_groups_meets_only_one_of_two_requirements() -> None:
    state = count_quorum(TREASURY_AND_RISK, [vote("A", "treasury", "risk")])
    assert not state.met
    assert state.counted == 1


def test_the_earliest_approvers_count_and_surplus_ones_do_not() -> None:
    votes = [vote(name, "treasury") for name in "CAB"]
    state = count_quorum([Requirement("treasury", 2)], votes)
    assert state.met
    assert state.approved_by == {"treasury": ("C", "A")}


def test_received_names_stay_in_approval_order_after_moves() -> None:
    reqs = (Requirement("treasury", 2), Requirement("risk", 1))
    votes = [vote("A", "treasury", "risk"), vote("B", "treasury"), vote("C", "treasury")]
    state = count_quorum(reqs, votes)
    assert state.approved_by == {"treasury": ("B", "C"), "risk": ("A",)}


def test_only_current_groups_count_and_outsiders_are_ignored() -> None:
    votes = [vote("A", "operations"), vote("B"), vote("C", "treasury")]
    state = count_quorum([Requirement("treasury", 2)], votes)
    assert state.approved_by == {"treasury": ("C",)}
    assert not state.met


def test_an_approver_counts_once_even_if_listed_twice() -> None:
    votes = [vote("A", "treasury"), vote("A", "treasury")]
    assert not count_quorum([Requirement("treasury", 2)], votes).met


def test_a_group_listed_twice_needs_that_many_distinct_approvers() -> None:
    reqs = [Requirement("treasury", 1), Requirement("risk", 1), Requirement("treasury", 2)]
    assert merge_requirements(reqs) == (Requirement("treasury", 3), Requirement("risk", 1))
    votes = [vote("A", "treasury"), vote("B", "treasury"), vote("C", "risk")]
    state = count_quorum(reqs, votes)
    assert not state.met
    assert state.as_dict()["required"] == [
        {"group": "treasury", "count": 3},
        {"group": "risk", "count": 1},
    ]
    assert count_quorum(reqs, [*votes, vote("D", "treasury")]).met


def test_the_dict_shape_shown_by_the_api_and_webhooks() -> None:
    state = count_quorum(TREASURY_AND_RISK, [vote("A", "treasury")])
    assert state.as_dict() == {
        "required": [{"group": "treasury", "count": 1}, {"group": "risk", "count": 1}],
        "received": {"risk": [], "treasury": ["A"]},
        "met": False,
    }


def test_nothing_required_is_met() -> None:
    state = count_quorum((), [vote("A", "treasury")])
    assert state.met
    assert state.as_dict() == {"required": [], "received": {}, "met": True}


@pytest.mark.parametrize(
    ("group", "count"),
    [("treasury", 0), ("treasury", -1), ("treasury", True), ("treasury", "2"), ("", 1), (None, 1)],
)
def test_invalid_requirements_are_refused(group: object, count: object) -> None:
    with pytest.raises(ValueError, match="requirement needs"):
        Requirement(group, count)  # type: ignore[arg-type]


def test_parsed_requirements_are_merged_and_never_empty() -> None:
    parsed = parse_requirements([{"group": "a", "count": 1}, {"group": "a", "count": 1}])
    assert parsed == (Requirement("a", 2),)
    with pytest.raises(ValueError, match="at least one"):
        parse_requirements([])


def test_the_same_input_gives_the_same_state() -> None:
    reqs = (Requirement("a", 2), Requirement("b", 1), Requirement("c", 1))
    votes = [vote("P", "a", "b"), vote("Q", "b", "c"), vote("R", "a", "c"), vote("S", "a")]
    assert count_quorum(reqs, votes) == count_quorum(reqs, list(votes))


# -- property: the engine against a brute-force search ---------------------------------------

GROUPS = ("g0", "g1", "g2")

requirement_lists = st.lists(
    st.builds(Requirement, st.sampled_from(GROUPS), st.integers(min_value=1, max_value=3)),
    min_size=1,
    max_size=3,
)
vote_lists = st.lists(
    st.frozensets(st.sampled_from((*GROUPS, "other"))), min_size=0, max_size=6
).map(lambda memberships: [vote(f"v{i}", *groups) for i, groups in enumerate(memberships)])


# The greedy pass this engine replaced fails on it; pinned so every run tries it.
OVERLAP = example(list(TREASURY_AND_RISK), [vote("A", "treasury", "risk"), vote("B", "treasury")])


def brute_force(reqs: Sequence[Requirement], votes: Sequence[Vote]) -> tuple[int, bool]:
    """(most approvals that can count, whether some assignment meets every requirement), trying
    every assignment of each vote to one of its groups or to none."""
    merged = merge_requirements(reqs)
    options = [[None, *(r.group for r in merged if r.group in v.groups)] for v in votes]
    best, met = 0, False
    for choice in itertools.product(*options):
        taken = {r.group: choice.count(r.group) for r in merged}
        if all(taken[r.group] <= r.count for r in merged):
            best = max(best, sum(taken.values()))
        met = met or all(taken[r.group] >= r.count for r in merged)
    return best, met


def assert_valid(state: QuorumState, votes: Sequence[Vote]) -> None:
    groups_of = {v.name: v.groups for v in votes}
    order = [v.name for v in votes]
    counted = [name for names in state.approved_by.values() for name in names]
    assert len(counted) == len(set(counted)), "an approver counted twice"
    for requirement in state.requirements:
        names = state.approved_by[requirement.group]
        assert len(names) <= requirement.count
        assert all(requirement.group in groups_of[name] for name in names)
        assert list(names) == sorted(names, key=order.index)


@settings(deadline=None, max_examples=300)
@given(requirement_lists, vote_lists)
@OVERLAP
def test_the_engine_counts_as_many_as_any_assignment(
    reqs: list[Requirement], votes: list[Vote]
) -> None:
    state = count_quorum(reqs, votes)
    assert_valid(state, votes)
    assert (state.counted, state.met) == brute_force(reqs, votes)


@settings(deadline=None, max_examples=150)
@given(requirement_lists, vote_lists)
@OVERLAP
def test_the_earliest_approvers_that_can_count_are_the_ones_counted(
    reqs: list[Requirement], votes: list[Vote]
) -> None:
    """Vote i counts exactly when it raises the best count of the votes before it, so a later
    approval never pushes out an earlier one."""
    counted = {name for names in count_quorum(reqs, votes).approved_by.values() for name in names}
    best = [brute_force(reqs, votes[:n])[0] for n in range(len(votes) + 1)]
    expected = {v.name for i, v in enumerate(votes) if best[i + 1] > best[i]}
    assert counted == expected
