"""Freezing and lifting (what the signer asks before it claims or releases anything is
custody.freezes.gate).

Every write here runs under the ledger head lock, like the signer's claims and its `signed`
records: a freeze either commits before the signer looks (and the signer sees it) or waits until
the signer's transaction committed (and the signature was released before the freeze, which is
the order the ledger then shows). Services never commit; the caller owns the transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from custody.errors import ValidationFailed
from custody.freezes import ledgered, repository
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.store.base import utcnow
from custody.store.models import Freeze, Unfreeze
from custody.wallets.errors import WalletNotFound
from custody.wallets.repository import wallet_by_name

MAX_REASON = 500
INSTALLATION, WALLET = "installation", "wallet"
SUPERSEDED = "superseded"


class FreezeInvalid(ValidationFailed):
    title = "Invalid freeze"
    slug = "invalid-freeze"


def check_reason(reason: object) -> str:
    """A reason people can read later in the ledger: printable text, not empty."""
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        raise FreezeInvalid("a reason is required: say in words why (--reason TEXT)")
    if len(text) > MAX_REASON or not text.isprintable():
        raise FreezeInvalid(f"the reason must be printable text of at most {MAX_REASON} characters")
    return text


def freeze(
    session: Session,
    *,
    wallet_id: int | None,
    reason: str,
    actor: str,
    source: str,
    evidence: dict[str, Any] | None = None,
) -> Freeze:
    """Stop signing for one wallet, or for all (`wallet_id` None), with its ledger entry.

    Idempotent: while a freeze of the same scope, source and reason is active it is returned
    and nothing new is written. `evidence` (a breaker's) goes into the ledger entry.
    """
    row, _ = freeze_once(
        session, wallet_id=wallet_id, reason=reason, actor=actor, source=source, evidence=evidence
    )
    return row


def freeze_once(
    session: Session,
    *,
    wallet_id: int | None,
    reason: str,
    actor: str,
    source: str,
    evidence: dict[str, Any] | None = None,
) -> tuple[Freeze, bool]:
    """`freeze`, and whether it froze anything new."""
    text = check_reason(reason)
    ledger.lock(session)
    wallet = _wallet_name(session, wallet_id)
    existing = repository.identical_active(session, wallet_id=wallet_id, source=source, reason=text)
    if existing is not None:
        return existing, False
    row = Freeze(
        id=_next_id(session),
        wallet_id=wallet_id,
        reason=text,
        actor=actor,
        source=source,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    data = {"freeze": row.id, **scope_of(row, wallet), "reason": text, "source": source}
    if evidence is not None:
        data["evidence"] = evidence
    ledger.append(session, EventKind.SIGNING_FROZEN, actor, data)
    return row, True


def freeze_named(
    session: Session, *, wallet: str | None, reason: object, actor: str, source: str
) -> tuple[Freeze, bool]:
    """`freeze_once` for a wallet given by name (CLI, API); None freezes the installation."""
    text = check_reason(reason)  # before the wallet: a missing reason is named first
    wallet_id = None if wallet is None else wallet_by_name(session, wallet).id
    return freeze_once(session, wallet_id=wallet_id, reason=text, actor=actor, source=source)


def lift(
    session: Session,
    row: Freeze,
    *,
    by: str,
    reason: str,
    unfreeze: Unfreeze | None = None,
    approved_by: dict[str, list[str]] | None = None,
) -> None:
    """Lift an active freeze, with its `signing.unfrozen` entry. A lift still waiting for its
    quorum (other than `unfreeze`, the one that lifts it now) is superseded: it has nothing left
    to lift."""
    ledger.lock(session)
    now = utcnow()
    row.lifted_at, row.lifted_by, row.lift_reason = now, by, reason
    data = {"freeze": row.id, **scope_of(row, _wallet_name(session, row.wallet_id))}
    data |= {"reason": reason, "frozen_for": row.reason, "source": row.source}
    if unfreeze is not None:
        data |= {"unfreeze": unfreeze.id, "approved_by": approved_by or {}}
    pending = repository.pending_unfreeze(session, row.id)
    if pending is not None and pending is not unfreeze:
        pending.state, pending.decided_at = SUPERSEDED, now
        data["superseded_unfreeze"] = pending.id
    ledger.append(session, EventKind.SIGNING_UNFROZEN, by, data)


def scope_of(row: Freeze, wallet: str | None) -> dict[str, Any]:
    return {"scope": INSTALLATION if row.wallet_id is None else WALLET, "wallet": wallet}


def describe_scope(wallet: str | None) -> str:
    return "all signing" if wallet is None else f"signing for wallet {wallet}"


def _next_id(session: Session) -> int:
    """Above every freeze id a row or the ledger ever held: a freeze whose row an insider
    deleted keeps its id to itself (the signer puts the row back: custody.freezes.gate)."""
    return max(repository.highest_id(session), ledgered.highest_id(session)) + 1


def _wallet_name(session: Session, wallet_id: int | None) -> str | None:
    if wallet_id is None:
        return None
    names = repository.wallet_names(session, [wallet_id])
    if wallet_id not in names:
        raise WalletNotFound(f"no wallet with id {wallet_id}")
    return names[wallet_id]
