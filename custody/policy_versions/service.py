"""Stored policy versions: every applied file is kept verbatim; the newest is active.

Parsed versions are cached per process by row id. Rows never change (a new version is a new
row), so the cache cannot serve a stale policy, and evaluation stays off the YAML parser.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.errors import CustodyError
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.policy.context import ListedKey
from custody.policy.loader import LoadedPolicy, load_stored_policy_text
from custody.policy_versions.governance import governance_quorums, supersede_pending
from custody.policy_versions.states import APPLIED, PROPOSED
from custody.store.base import utcnow
from custody.store.database import database_key
from custody.store.models import PolicyVersion

_CACHE_LIMIT = 32
# Keyed by database and row id: one process may serve several databases (the tests do).
_cache: dict[tuple[str, int], LoadedPolicy] = {}
_cache_lock = threading.Lock()


class PolicyTampered(CustodyError):
    status = 500
    title = "Policy version invalid"
    slug = "policy-tampered"


@dataclass(frozen=True)
class ActivePolicy:
    version_id: int
    policy: LoadedPolicy
    applied_at: datetime

    @property
    def digest(self) -> str:
        return self.policy.digest


# Built once: every decision reads it, and building it cost as much as running it.
_NEWEST_APPLIED = (
    select(PolicyVersion.id, PolicyVersion.applied_at)
    .where(PolicyVersion.state == APPLIED)
    .order_by(PolicyVersion.id.desc())
    .limit(1)
)


def active_policy(session: Session) -> ActivePolicy | None:
    row = session.execute(_NEWEST_APPLIED).first()
    if row is None:
        return None
    return ActivePolicy(
        version_id=row.id, policy=_load_version(session, row.id), applied_at=row.applied_at
    )


def _entry_keys(policy: LoadedPolicy) -> set[ListedKey]:
    return {
        (name, entry.chain, entry.address.lowercase)
        for name, entries in policy.policy.allowlists.items()
        for entry in entries
    }


_listed_cache: dict[tuple[str, int], dict[ListedKey, datetime]] = {}


def listed_since(session: Session, active: ActivePolicy) -> dict[ListedKey, datetime]:
    """When each allowlist entry of the active version was first listed without interruption.

    An activation delay counts from then: re-applying a policy (or another change elsewhere in
    it) must not restart the delay of an entry that was already listed; removing an entry and
    adding it back does restart it.
    """
    cache_key = (database_key(session), active.version_id)
    with _cache_lock:
        cached = _listed_cache.get(cache_key)
    if cached is not None:
        return cached
    rows = session.execute(
        select(PolicyVersion.id, PolicyVersion.applied_at)
        .where(PolicyVersion.id <= active.version_id, PolicyVersion.state == APPLIED)
        .order_by(PolicyVersion.id.desc())
    ).all()
    pending = _entry_keys(active.policy)
    since: dict[ListedKey, datetime] = {}
    for version_id, applied_at in rows:
        listed = _entry_keys(_load_version(session, version_id)) & pending
        for key in listed:
            since[key] = applied_at
        pending = listed
        if not pending:
            break
    with _cache_lock:
        _listed_cache[cache_key] = since
    return since


def _load_version(session: Session, version_id: int) -> LoadedPolicy:
    key = (database_key(session), version_id)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    version = session.execute(
        select(PolicyVersion).where(PolicyVersion.id == version_id)
    ).scalar_one()
    loaded = load_stored_policy_text(version.source_text, version.source_name)
    if loaded.digest != version.digest:
        # The stored text no longer gives the digest recorded when it was applied: fail closed.
        raise PolicyTampered(f"policy version {version_id} does not match its recorded digest")
    with _cache_lock:
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[key] = loaded
    return loaded


def apply(session: Session, loaded: LoadedPolicy, *, source_name: str, actor: str) -> PolicyVersion:
    """Make `loaded` the active policy, or, when the active policy has `governance`, propose it:
    it then takes effect only once that quorum approves (custody.approvals.policy_approvals).

    The ledger records the digest either way, so auditors can match the text to its effect.
    """
    current = active_policy(session)
    quorums = governance_quorums(current.policy if current else None)
    version = PolicyVersion(
        digest=loaded.digest,
        source_name=source_name,
        source_text=loaded.source_text,
        applied_by=actor,
        applied_at=utcnow(),
        state=APPLIED if quorums is None else PROPOSED,
        required_approvals=None if quorums is None else json.dumps(quorums),
    )
    session.add(version)
    session.flush()
    kind = EventKind.POLICY_APPLIED if quorums is None else EventKind.POLICY_PROPOSED
    data: dict[str, object] = {
        "version": version.id,
        "digest": loaded.digest,
        "source": source_name,
        "previous_digest": current.digest if current else None,
    }
    if quorums is not None:
        data["required_approvals"] = quorums
    ledger.append(session, kind, actor, data)
    if quorums is None:
        supersede_pending(session, version, actor)
    return version


def mark_applied(session: Session, version: PolicyVersion, actor: str, reason: str) -> None:
    """A proposal whose quorum approved takes effect now; other pending proposals end."""
    current = active_policy(session)
    version.state = APPLIED
    version.applied_at = utcnow()
    ledger.append(
        session,
        EventKind.POLICY_APPLIED,
        actor,
        {
            "version": version.id,
            "digest": version.digest,
            "source": version.source_name,
            "previous_digest": current.digest if current else None,
            "reason": reason,
        },
    )
    supersede_pending(session, version, actor)


def versions(session: Session) -> list[PolicyVersion]:
    return list(session.execute(select(PolicyVersion).order_by(PolicyVersion.id)).scalars())
