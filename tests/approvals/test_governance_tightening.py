"""Tightening governance cannot be bypassed through a proposal made under the looser one.

Issue 9 §2.1: a proposal used to keep the quorum of the policy active when it was proposed, so
approving an older, looser proposal after governance was tightened needed only the old quorum.
"""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import update

from custody.app import create_app
from custody.store.models import PolicyVersion
from tests.approvals.test_policy_governance import active_digest, admin, decide, propose
from tests.support.installation import Installation

LOOSE = """
version: 1
governance: {require_approvals: {count: 1, group: admins}}
rules:
  - {id: allow-all, match: {type: withdrawal}, action: allow}
"""
TIGHT = """
version: 1
governance: {require_approvals: {count: 2, group: admins}}
rules:
  - {id: allow-all, match: {type: withdrawal}, action: allow}
"""
UNGOVERNED = """
version: 1
rules:
  - {id: anything-goes, match: {}, action: allow}
"""


@pytest.fixture
def loose(fresh_installation: Installation) -> Installation:
    fresh_installation.apply_policy(LOOSE)
    return fresh_installation


def state_of(inst: Installation, version: int) -> str:
    with inst.runtime.db.read() as session:
        row = session.get(PolicyVersion, version)
        assert row is not None
        return row.state


def test_an_activation_supersedes_proposals_made_before_it(loose: Installation) -> None:
    first = admin(loose)
    tight, tight_digest = propose(loose, TIGHT)
    # Proposed after `tight` but before it took effect: one admin was enough back then.
    attack, attack_digest = propose(loose, UNGOVERNED)
    with HttpClient(create_app(loose.runtime, run_worker=False)) as http:
        assert decide(http, tight, tight_digest, first) == 200
        assert active_digest(loose) == tight_digest
        assert decide(http, attack, attack_digest, first) == 409
    assert active_digest(loose) == tight_digest
    assert state_of(loose, attack) == "rejected"
    superseded = loose.ledger_entries("policy.proposal_superseded")
    assert [(e["data"]["version"], e["data"]["superseded_by"]) for e in superseded] == [
        (attack, tight)
    ]


def test_an_older_proposal_is_superseded_too(loose: Installation) -> None:
    first = admin(loose)
    older, older_digest = propose(loose, UNGOVERNED)
    tight, tight_digest = propose(loose, TIGHT)
    with HttpClient(create_app(loose.runtime, run_worker=False)) as http:
        assert decide(http, tight, tight_digest, first) == 200
        assert decide(http, older, older_digest, first) == 409
    assert active_digest(loose) == tight_digest
    assert state_of(loose, older) == "rejected"
    kinds = [e["kind"] for e in loose.ledger_entries() if e["data"].get("version") == older]
    assert kinds == ["policy.proposed", "policy.proposal_superseded"]


def test_the_quorum_is_the_governance_active_at_approval_time(loose: Installation) -> None:
    """A pending proposal that escaped supersession (a database written before it existed)
    still needs the quorum of today's governance, not the one stored with it."""
    first, second = admin(loose), admin(loose)
    tight, tight_digest = propose(loose, TIGHT)
    attack, attack_digest = propose(loose, UNGOVERNED)
    assert json.loads(_required(loose, attack)) == [{"count": 1, "group": "admins"}]
    with loose.runtime.db.write() as session:  # `tight` activated the way older releases did
        session.execute(
            update(PolicyVersion).where(PolicyVersion.id == tight).values(state="applied")
        )
    assert active_digest(loose) == tight_digest
    with HttpClient(create_app(loose.runtime, run_worker=False)) as http:
        assert decide(http, attack, attack_digest, first) == 200
        assert active_digest(loose) == tight_digest  # one of the two admins today
        assert decide(http, attack, attack_digest, second) == 200
    assert active_digest(loose) == attack_digest


def test_a_proposal_without_governance_now_cannot_be_approved(loose: Installation) -> None:
    first = admin(loose)
    stale, stale_digest = propose(loose, TIGHT)
    free, _ = propose(loose, UNGOVERNED)
    with loose.runtime.db.write() as session:  # activated without superseding (older release)
        session.execute(
            update(PolicyVersion).where(PolicyVersion.id == free).values(state="applied")
        )
    with HttpClient(create_app(loose.runtime, run_worker=False)) as http:
        assert decide(http, stale, stale_digest, first) == 409
    assert state_of(loose, stale) == "proposed"


def _required(inst: Installation, version: int) -> str:
    with inst.runtime.db.read() as session:
        row = session.get(PolicyVersion, version)
        assert row is not None
        assert row.required_approvals is not None
        return row.required_approvals


def activate_without_superseding(inst: Installation, version: int) -> None:
    """What an approval did before activations superseded pending proposals."""
    with inst.runtime.db.write() as session:
        session.execute(
            update(PolicyVersion).where(PolicyVersion.id == version).values(state="applied")
        )
