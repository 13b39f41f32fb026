"""Stored policy versions: every applied file is kept verbatim; the newest is active.

Parsed versions are cached per process by row id. Rows never change (a new version is a new
row), so the cache cannot serve a stale policy, and evaluation stays off the YAML parser.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from custody.errors import CustodyError
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.policy.loader import LoadedPolicy, load_policy_text
from custody.store.base import utcnow
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

    @property
    def digest(self) -> str:
        return self.policy.digest


def active_policy(session: Session) -> ActivePolicy | None:
    version_id = session.execute(
        select(PolicyVersion.id).order_by(PolicyVersion.id.desc()).limit(1)
    ).scalar_one_or_none()
    if version_id is None:
        return None
    return ActivePolicy(version_id=version_id, policy=_load_version(session, version_id))


def _database_key(session: Session) -> str:
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    return engine.url.render_as_string(hide_password=True)


def _load_version(session: Session, version_id: int) -> LoadedPolicy:
    key = (_database_key(session), version_id)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    version = session.execute(
        select(PolicyVersion).where(PolicyVersion.id == version_id)
    ).scalar_one()
    loaded = load_policy_text(version.source_text, version.source_name)
    if loaded.digest != version.digest:
        # The stored text no longer gives the digest recorded when it was applied: fail closed.
        raise PolicyTampered(f"policy version {version_id} does not match its recorded digest")
    with _cache_lock:
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[key] = loaded
    return loaded


def apply(session: Session, loaded: LoadedPolicy, *, source_name: str, actor: str) -> PolicyVersion:
    """Make `loaded` the active policy; the ledger records its digest so auditors can match it."""
    current = active_policy(session)
    version = PolicyVersion(
        digest=loaded.digest,
        source_name=source_name,
        source_text=loaded.source_text,
        applied_by=actor,
        applied_at=utcnow(),
    )
    session.add(version)
    session.flush()
    ledger.append(
        session,
        EventKind.POLICY_APPLIED,
        actor,
        {
            "version": version.id,
            "digest": loaded.digest,
            "source": source_name,
            "previous_digest": current.digest if current else None,
        },
    )
    return version


def versions(session: Session) -> list[PolicyVersion]:
    return list(session.execute(select(PolicyVersion).order_by(PolicyVersion.id)).scalars())
