"""What the signer asks before it claims and before it releases a signature: what is frozen.

The answer is every freeze the `freezes` rows hold active **and** every freeze the ledger
records with no lift (custody.freezes.ledgered), over the scope the ledger recorded: a row only
ever adds. A recorded freeze whose row is gone, marked lifted or changed is an insider's edit
(custody lifts only with a `signing.unfrozen` entry): the signer puts the row back as the
ledger recorded it, says so in a `signing.freeze_restored` entry, and the built-in
`freeze-records` breaker freezes all signing until people have looked.

Both run under the ledger head lock, which every freeze and lift takes too: what is frozen stays
so until the signer's transaction commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from custody.freezes import ledgered, repository
from custody.freezes.breakers import freeze_records_refused
from custody.freezes.ledgered import Recorded
from custody.freezes.service import INSTALLATION, WALLET
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.store.models import Freeze


@dataclass(frozen=True)
class Held:
    """One freeze in force: its id and scope (None: the whole installation)."""

    freeze_id: int
    wallet_id: int | None


@dataclass(frozen=True)
class Hold:
    """The freezes in force when the signer looked."""

    freezes: tuple[Held, ...]

    @property
    def everything(self) -> bool:
        return any(held.wallet_id is None for held in self.freezes)

    @property
    def wallet_ids(self) -> frozenset[int]:
        return frozenset(held.wallet_id for held in self.freezes if held.wallet_id is not None)

    def covering(self, wallet_id: int) -> list[int]:
        """The ids of the freezes that stop this wallet, each once."""
        ids = (held.freeze_id for held in self.freezes if held.wallet_id in (None, wallet_id))
        return sorted(set(ids))


def hold(session: Session, *, actor: str = "signer") -> Hold:
    """What is frozen now, by the rows and by the ledger; restores what an insider edited. The
    caller holds the ledger head lock (the signer's claim takes it first)."""
    rows = {row.id: row for row in repository.active(session)}
    held = [Held(row.id, row.wallet_id) for row in rows.values()]
    recorded = ledgered.active(session)
    names = {r.wallet for r in recorded.values() if r.wallet is not None}
    wallet_ids = repository.wallet_ids_named(session, names)
    found: list[str] = []
    for record in recorded.values():
        if record.wallet is not None and record.wallet not in wallet_ids:
            # its wallet's row is gone or renamed: stop everything rather than guess
            held.append(Held(record.freeze_id, None))
            found.append(f"freeze {record.freeze_id}: its wallet {record.wallet} has no row")
            continue
        wallet_id = None if record.wallet is None else wallet_ids[record.wallet]
        held.append(Held(record.freeze_id, wallet_id))
        if not _agrees(rows.get(record.freeze_id), record, wallet_id):
            found.append(_restore(session, record, wallet_id, actor=actor))
    if found:
        tripped = freeze_records_refused(session, found=found, actor=actor)
        held.append(Held(tripped.id, None))
    return Hold(tuple(held))


def withhold(session: Session, *, request_id: str, wallet_id: int, digest: str, actor: str) -> bool:
    """Right before a signature is released: True, with a `signing.withheld` entry, when a freeze
    covers the wallet now (it came while the HSM signed). The signature is dropped; the request
    stays `signing` until its lease runs out, and is claimed and signed again once lifted."""
    ledger.lock(session)
    covering = hold(session, actor=actor).covering(wallet_id)
    if not covering:
        return False
    ledger.append(
        session,
        EventKind.SIGNING_WITHHELD,
        actor,
        {
            "request": request_id,
            "digest": digest,
            "freezes": covering,
            "reason": "signing was frozen while the HSM signed: the signature was discarded",
        },
    )
    return True


def _agrees(row: Freeze | None, record: Recorded, wallet_id: int | None) -> bool:
    return (
        row is not None
        and row.wallet_id == wallet_id
        and row.reason == record.reason
        and row.source == record.source
    )


def _restore(session: Session, record: Recorded, wallet_id: int | None, *, actor: str) -> str:
    """Put the row of a freeze the ledger holds active back as recorded, with an entry saying
    what the row said: the views, `custody freezes` and `custody unfreeze` read rows."""
    row = session.get(Freeze, record.freeze_id)
    if row is None:
        what = "its row was deleted"
        row = Freeze(
            id=record.freeze_id,
            wallet_id=wallet_id,
            reason=record.reason,
            actor=record.actor,
            source=record.source,
            created_at=datetime.strptime(record.time, "%Y-%m-%dT%H:%M:%S.%f%z"),
        )
        session.add(row)
    else:
        what = _differences(row, record, wallet_id)
        row.wallet_id, row.reason, row.source = wallet_id, record.reason, record.source
        row.lifted_at = row.lifted_by = row.lift_reason = None
    session.flush()
    found = f"freeze {record.freeze_id}: {what}, but the ledger records no lift"
    ledger.append(
        session,
        EventKind.SIGNING_FREEZE_RESTORED,
        actor,
        {
            "freeze": record.freeze_id,
            "scope": INSTALLATION if record.wallet is None else WALLET,
            "wallet": record.wallet,
            "reason": record.reason,
            "source": record.source,
            "found": found,
        },
    )
    return found


def _differences(row: Freeze, record: Recorded, wallet_id: int | None) -> str:
    said: list[str] = []
    if row.lifted_at is not None:
        said.append(f"its row says it was lifted by {row.lifted_by}")
    changed = [
        name
        for name, differs in (
            ("wallet_id", row.wallet_id != wallet_id),
            ("reason", row.reason != record.reason),
            ("source", row.source != record.source),
        )
        if differs
    ]
    if changed:
        said.append(f"its row's {', '.join(changed)} changed")
    return " and ".join(said)
