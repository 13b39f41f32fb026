"""Circuit breakers: conditions that freeze signing by themselves, judged where they happen and
in the same transaction, so the event and the freeze commit together or not at all.

- A policy's breakers (custody.policy.breakers), at intake, once the request is decided:
  `denied_requests` after a denial freezes the whole installation; `velocity` after a request
  that was not denied freezes that request's wallet.
- Built in, always on:
  `signature-check`: the signer's software check refused a signature the HSM made (a wrong key,
  a broken HSM, a payload changed under the signer): all signing freezes.
  `ledger-consistency`: the checkpointer found a tree that does not extend the last signed
  checkpoint (custody.ledger.forks): all signing freezes.
  `configuration-seal`: the configuration rows the signer was about to use are not the ones the
  installation root key sealed (custody.seals): all signing freezes.
  `limit-evidence`: a request that a limit counts in the signer's re-check has no client
  evidence that holds (custody.limits.usage): what it moved cannot be known, so nothing that
  limit judges may be signed; all signing freezes.
  `freeze-records`: a freeze the ledger records with no lift has a row that is gone, marked
  lifted or changed (custody.freezes.gate): someone lifted it behind custody's back; the row is
  put back and all signing freezes.

What the policy's breakers count comes from the ledger where that is cheap: the denials of a
client (its `request.created` entries that moved a request to `rejected`) and the last lift of
a breaker's freeze (its `signing.unfrozen` entry), so an insider who edits `requests` or
`freezes` rows does not reset them. A velocity breaker still adds up the rows' amounts (reading
every request of a window from the ledger at each intake would cost too much).

A breaker trips once: while its freeze is active it does not freeze again, and once its freeze
is lifted it counts only what came after the lift, so people who looked and lifted are not
frozen again at once by the events they looked at. The freeze's ledger entry names the breaker
and carries its evidence.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from custody.freezes import ledgered, repository
from custody.freezes.service import freeze
from custody.ledger.forks import ForkDetected
from custody.ledger.service import rfc3339
from custody.policy import Decision
from custody.policy.breakers import (
    CONFIGURATION_SEAL,
    FREEZE_RECORDS,
    LEDGER_CONSISTENCY,
    LIMIT_EVIDENCE,
    SIGNATURE_CHECK,
    Breaker,
    DeniedRequests,
    Velocity,
)
from custody.policy.values import format_duration
from custody.policy_versions.service import ActivePolicy
from custody.store.models import Freeze, Request


def source_of(breaker_id: str) -> str:
    return f"breaker:{breaker_id}"


def after_intake(
    session: Session,
    *,
    request: Request,
    client: str,
    wallet: str,
    decision: Decision,
    active: ActivePolicy | None,
) -> list[Freeze]:
    """The policy's breakers, judged on a request intake has just stored and decided."""
    breakers = active.policy.policy.breakers if active is not None else None
    tripped: list[Freeze] = []
    for breaker in breakers or ():
        found: Freeze | None = None
        if breaker.denied_requests is not None and decision.decision == "deny":
            found = _denied(session, breaker, breaker.denied_requests, request, client)
        elif breaker.velocity is not None and decision.decision != "deny":
            found = _velocity(session, breaker, breaker.velocity, request, wallet)
        if found is not None:
            tripped.append(found)
    return tripped


def _denied(
    session: Session, breaker: Breaker, rule: DeniedRequests, request: Request, client: str
) -> Freeze | None:
    source = source_of(breaker.id)
    if repository.active_from(session, source=source, wallet_id=None) is not None:
        return None
    since = _since(session, source, None, request.created_at, rule.window)
    denied = ledgered.denied_count(session, request.client_id, since)
    if denied <= rule.max_count:
        return None
    window = format_duration(rule.window)
    return freeze(
        session,
        wallet_id=None,
        reason=f"breaker {breaker.id}: more than {rule.max_count} requests of client {client} "
        f"denied by policy within {window}",
        actor=source,
        source=source,
        evidence={
            "breaker": breaker.id,
            "client": request.client_id,
            "denied": denied,
            "max_count": rule.max_count,
            "window": window,
            "since": rfc3339(since),
            "last_request": request.id,
        },
    )


def _velocity(
    session: Session, breaker: Breaker, rule: Velocity, request: Request, wallet: str
) -> Freeze | None:
    if request.asset != rule.asset or not rule.watches(wallet):
        return None
    source = source_of(breaker.id)
    if repository.active_from(session, source=source, wallet_id=request.wallet_id) is not None:
        return None
    since = _since(session, source, wallet, request.created_at, rule.window)
    amounts = repository.asked_amounts(session, request.wallet_id, rule.asset, since)
    total = sum(int(amount) for amount in amounts)
    if total <= rule.max_amount.value:
        return None
    window = format_duration(rule.window)
    return freeze(
        session,
        wallet_id=request.wallet_id,
        reason=f"breaker {breaker.id}: requests for wallet {wallet} asked for more than "
        f"{rule.max_amount} base units of {rule.asset} within {window}",
        actor=source,
        source=source,
        evidence={
            "breaker": breaker.id,
            "wallet": wallet,
            "asset": rule.asset,
            "total": str(total),
            "max_amount": str(rule.max_amount),
            "requests": len(amounts),
            "window": window,
            "since": rfc3339(since),
            "last_request": request.id,
        },
    )


def _since(
    session: Session, source: str, wallet: str | None, now: datetime, window: int
) -> datetime:
    """The start of the window, or the breaker's last lift in this scope if that is later (as
    the ledger records it: a lift time edited into a row resets nothing)."""
    start = now - timedelta(seconds=window)
    lifted = ledgered.last_lift(session, source=source, wallet=wallet)
    return start if lifted is None or lifted < start else lifted


def signature_check_failed(
    session: Session, *, request_id: str, key_label: str, detail: str, worker_id: str
) -> Freeze:
    """A signature the HSM made did not verify in software: nothing more is signed anywhere
    until someone has looked (the request itself fails, as before)."""
    return freeze(
        session,
        wallet_id=None,
        reason="a signature failed its software check: all signing is frozen",
        actor=f"worker:{worker_id}",
        source=source_of(SIGNATURE_CHECK),
        evidence={
            "breaker": SIGNATURE_CHECK,
            "request": request_id,
            "key": key_label,
            "detail": detail,
        },
    )


def configuration_refused(session: Session, *, reason: str, worker_id: str) -> Freeze:
    """The configuration is not the sealed one (an edit outside custody, a forged or rolled-back
    seal): nothing is signed until people have looked, restored the rows and lifted the freeze."""
    return freeze(
        session,
        wallet_id=None,
        reason="the configuration is not the sealed one: all signing is frozen",
        actor=f"worker:{worker_id}",
        source=source_of(CONFIGURATION_SEAL),
        evidence={"breaker": CONFIGURATION_SEAL, "detail": reason},
    )


def freeze_records_refused(session: Session, *, found: list[str], actor: str) -> Freeze:
    """Freezes the ledger holds active had their rows deleted, lifted or changed outside
    custody (custody.freezes.gate put them back): nothing is signed until people have looked.
    `found` says what each row said; the `signing.freeze_restored` entries say it too."""
    return freeze(
        session,
        wallet_id=None,
        reason="freezes were lifted or changed in the database without a ledger entry: all "
        "signing is frozen",
        actor=actor,
        source=source_of(FREEZE_RECORDS),
        evidence={"breaker": FREEZE_RECORDS, "found": found},
    )


def limit_evidence_refused(
    session: Session,
    *,
    request_id: str,
    counted: str,
    limit_id: str | None,
    detail: str,
    worker_id: str,
) -> Freeze:
    """A request a limit counts has no evidence that holds (an edited body, a deleted token, a
    request from before evidence was stored): counting it as zero would free room an insider
    made, and counting its row would believe the insider. Nothing is signed until people have
    looked; `request_id` (the one being claimed) waits, unchanged."""
    return freeze(
        session,
        wallet_id=None,
        reason=f"limit {limit_id}: request {counted}'s evidence does not hold: all signing is "
        "frozen",
        actor=f"worker:{worker_id}",
        source=source_of(LIMIT_EVIDENCE),
        evidence={
            "breaker": LIMIT_EVIDENCE,
            "limit": limit_id,
            "counted": counted,
            "request": request_id,
            "detail": detail,
        },
    )


def freeze_on_fork(session: Session, fork: ForkDetected) -> None:
    """custody.ledger.forks' hook: a ledger that no longer extends its signed checkpoint
    freezes all signing, in the transaction that records the detection."""
    freeze(
        session,
        wallet_id=None,
        reason="the ledger does not extend its last signed checkpoint: all signing is frozen",
        actor="checkpointer",
        source=source_of(LEDGER_CONSISTENCY),
        evidence={
            "breaker": LEDGER_CONSISTENCY,
            "checkpoint_size": fork.checkpoint_size,
            "tree_size": fork.tree_size,
            "detail": fork.message,
        },
    )
