"""Sealing every configuration change as it commits.

Services that add a client, rotate a key or apply a policy do not seal anything themselves: a
session listener notices that a flush touched a configuration table, and the write block seals
the result before it commits (custody.store.database `commit_hooks`), signing with the root key
in the HSM. A change that cannot be sealed (no HSM, no root key) does not commit: configuration
never changes unsealed through custody. A process without this hook cannot seal either, and what
it changes stops the signer until someone seals it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, UOWTransaction

from custody.ledger import service as ledger
from custody.runtime import Runtime
from custody.seals.service import seal
from custody.store import models

# The tables custody.seals.document renders: a change to any of them needs a new seal.
CONFIGURATION = (
    models.Approver,
    models.ApproverGroup,
    models.ApproverGroupSettings,
    models.Asset,
    models.Chain,
    models.Client,
    models.Key,
    models.PolicyVersion,
    models.ReferencePrice,
    models.Venue,
    models.Wallet,
    models.WebauthnCredential,
)
CONFIGURATION_TABLES = frozenset(model.__tablename__ for model in CONFIGURATION)
_TOUCHED = "custody.seals.touched"


def install(runtime: Runtime) -> None:
    """Seal configuration changes made through `runtime.db` with the runtime's HSM token."""
    db = runtime.db
    if any(getattr(hook, "custody_seal", False) for hook in db.commit_hooks):
        return
    event.listen(db.write_sessions, "after_flush", _after_flush)
    event.listen(db.write_sessions, "do_orm_execute", _on_execute)

    def seal_if_touched(session: Session) -> None:
        if not session.info.get(_TOUCHED):
            return
        session.flush()
        seal(
            session,
            runtime.token(),
            key_label=runtime.settings.root_key_label,
            actor=_actor(session),
            reason="; ".join(sorted({kind for kind, _ in ledger.pending_entries(session)}))
            or "configuration changed",
        )
        session.info.pop(_TOUCHED, None)

    seal_if_touched.custody_seal = True  # type: ignore[attr-defined]
    db.commit_hooks.append(seal_if_touched)


def _actor(session: Session) -> str:
    """Who made the change: the actor of the ledger entries that recorded it."""
    actors = sorted({actor for _, actor in ledger.pending_entries(session)})
    return ", ".join(actors)[:100] if actors else "unrecorded"


def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    if any(
        isinstance(row, CONFIGURATION)
        for rows in (session.new, session.dirty, session.deleted)
        for row in rows
    ):
        session.info[_TOUCHED] = True


def _on_execute(state: Any) -> None:
    # Bulk UPDATE and DELETE statements skip the unit of work that after_flush watches.
    if not (state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in CONFIGURATION_TABLES:
        state.session.info[_TOUCHED] = True
