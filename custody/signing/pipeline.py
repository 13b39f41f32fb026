"""Signing one request, top to bottom. Three short transactions around one HSM call:

claim (re-check everything, mark `signing`) -> sign in the HSM and verify in software ->
finish (mark `signed`). A crash between claim and finish leaves the request `signing` with a
lease; when the lease runs out another worker claims it again and signs the same digest, so the
request is finished exactly once and the ledger shows every attempt.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from custody.approvals.deadlines import approval_deadline
from custody.approvals.evidence import Discounted, verified_quorum, verified_rejection
from custody.chains import Digest
from custody.chains.evm.fees import payload_fees
from custody.decisions.service import decide
from custody.freezes import gate as freezes
from custody.freezes.breakers import configuration_refused, limit_evidence_refused
from custody.hsm.signer import Signer
from custody.keys.repository import find_key, key_by_id
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.ledger.service import rfc3339
from custody.limits.usage import CountedEvidenceRefused
from custody.policy import Decision, RequireApprovals
from custody.policy.facts import RequestFacts
from custody.policy.stored import stored_decision
from custody.requests import lifecycle
from custody.requests import repository as requests
from custody.requests.lifecycle import Lease
from custody.requests.states import RequestStatus
from custody.seals import repository as seals
from custody.seals.document import Scope
from custody.seals.gate import ConfigurationGate
from custody.settings import RelyingParty
from custody.signing import failpoints
from custody.signing.evidence import CountedEvidence, Evidence, EvidenceRefused, rederive
from custody.signing.payloads import (
    BITCOIN_PSBT,
    SAFE_TX,
    BitcoinPsbtHandler,
    SafeTxHandler,
    Tokens,
    handler_for,
    owners_away,
    safe_owners_away,
)
from custody.store.base import utcnow
from custody.store.models import Request
from custody.wallets.repository import wallet_by_id
from custody.wallets.repository import wallet_ids_on_tokens as wallets_on

log = logging.getLogger("custody.signing")


@dataclass(frozen=True)
class Claim:
    request_id: str
    digest: Digest
    payload: dict[str, Any]
    key_label: str
    address: str
    attempt: int
    wallet_id: int
    """The wallet the client named (its evidence): a freeze of it stops the release."""
    token: str = ""
    """The token the key is on (`keys.token`): the signer signs there (Runtime.token_for)."""
    owner_tokens: tuple[str | None, ...] = ()
    """PSBTs and Safes: the token of each owner key, in the payload's order (None: a key
    custody does not hold)."""
    executor_token: str = ""
    """Safes: the token of the executor's key, which signs `execTransaction`."""
    wallet_name: str = ""
    http_request_id: str | None = None
    """The X-Request-Id of the call that created the request: its spans name it (tracing)."""


def claim_next(
    session: Session,
    *,
    worker_id: str,
    lease_seconds: int,
    skip_locked: bool,
    configuration: ConfigurationGate,
    relying_party: RelyingParty,
    max_fee_wei: int,
    waiting_tokens: Collection[str] = (),
) -> Claim | None:
    """The next request to sign, or None when nothing is waiting or may be signed (see
    `claim_batch`)."""
    claims = claim_batch(
        session,
        limit=1,
        worker_id=worker_id,
        lease_seconds=lease_seconds,
        skip_locked=skip_locked,
        configuration=configuration,
        relying_party=relying_party,
        max_fee_wei=max_fee_wei,
        waiting_tokens=waiting_tokens,
    )
    return claims[0] if claims else None


def claim_batch(
    session: Session,
    *,
    limit: int,
    worker_id: str,
    lease_seconds: int,
    skip_locked: bool,
    configuration: ConfigurationGate,
    relying_party: RelyingParty,
    max_fee_wei: int,
    waiting_tokens: Collection[str] = (),
) -> list[Claim]:
    """Up to `limit` requests to sign, oldest first; fewer when no more are waiting or may be
    signed.

    `relying_party`: whom passkey approvals must answer when they are verified again;
    `max_fee_wei`: the installation's cap on a transaction's fee (CUSTODY_MAX_TX_FEE_WEI),
    checked again on what the client's body and the recorded fill give;
    `waiting_tokens`: tokens the signer cannot use now; requests of keys on them wait.

    Requests that the checks below stop leave the queue (failed, rejected or back to approval),
    so the loop ends; a stopped request never hides the ones behind it.
    """
    # Claims decide limits again: hold the ledger head lock first, as intake does.
    ledger.lock(session)
    # (0) frozen (custody.freezes.gate: the rows and the ledger): requests of a frozen scope are
    #     not claimed; they wait, `approved` (or `signing` with a lease run out), and are signed
    #     once it is lifted. Read once for the batch: every freeze and lift takes the lock held
    #     from here on.
    frozen = freezes.hold(session, actor=f"worker:{worker_id}")
    if frozen.everything:
        return []
    # requests of keys on a token that fails wait, `approved`, like frozen ones, unclaimed
    excluded = set(frozen.wallet_ids) | wallets_on(session, waiting_tokens)
    waiting: set[str] = set()
    claims: list[Claim] = []
    while len(claims) < limit:
        request = requests.next_to_sign(
            session,
            utcnow(),
            skip_locked=skip_locked,
            excluding_wallets=excluded,
            excluding_requests=waiting,
        )
        if request is None:
            break
        if _owners_away(session, request, waiting_tokens):
            # a multisig wallet waits only when the keys on the tokens that work fall short
            excluded.add(request.wallet_id)
            continue
        # (0) every configuration row used below (client keys, wallets, approvers, policy) is
        #     the sealed one; otherwise nothing is signed, requests wait, and signing freezes
        verdict = configuration.check(session, _scope(session, request))
        if verdict.refused is not None:
            configuration_refused(session, reason=verdict.refused, worker_id=worker_id)
            break
        if verdict.waiting is not None:
            # relies on a change the governance quorum has not approved yet: it waits, others go
            waiting.add(request.id)
            continue
        try:
            claim = _claim(
                session,
                request,
                worker_id=worker_id,
                lease_seconds=lease_seconds,
                relying_party=relying_party,
                max_fee_wei=max_fee_wei,
                configuration=configuration,
            )
        except _SigningStopped:
            # the request waits where it was; the freeze says why (and withholds at `finish`
            # what this batch claimed before it)
            break
        except _AwaitingQuorum:
            waiting.add(request.id)
            continue
        if claim is not None:
            claims.append(claim)
    return claims


class _SigningStopped(Exception):
    """A claim found something that stops all signing (and froze it): the loop ends."""


class _AwaitingQuorum(Exception):
    """A claim relies on a configuration change still waiting for the governance quorum."""


def _scope(session: Session, request: Request) -> Scope:
    """The configuration rows a claim of `request` relies on (custody.seals checks them)."""
    return Scope(
        client_ids=frozenset({request.client_id}),
        wallet_ids=frozenset({request.wallet_id}),
        approver_ids=seals.approvers_of(session, request.id),
    )


def _claim(
    session: Session,
    request: Request,
    *,
    worker_id: str,
    lease_seconds: int,
    relying_party: RelyingParty,
    max_fee_wei: int,
    configuration: ConfigurationGate,
) -> Claim | None:
    # (1) the request is the oldest approved one, or one whose worker's lease ran out
    now = utcnow()
    reclaimed_from = request.claimed_by if request.status == RequestStatus.SIGNING else None

    # (2) what is approved is what is signed, and what the client signed: decode the client's
    #     signed body again, rebuild the payload's digest, and compare both with the row
    checked = _checked_evidence(session, request, max_fee_wei)
    if checked is None:
        return None
    evidence, digest = checked
    payload = evidence.payload

    # (3) re-check the current policy on the facts decoded here: a tightened rule stops an
    #     earlier approval, and an edited `facts` column changes nothing; an approval counts
    #     only if its signature verifies over the statement for the digest derived here
    #     (and limits count the other requests from their own evidence, and from the ledger)
    if not _recheck_allows(
        session,
        request,
        evidence.facts,
        digest,
        relying_party,
        configuration=configuration,
        worker_id=worker_id,
    ):
        return None

    # (4) mark signing under a lease, with its ledger entry, and commit before touching the HSM;
    #     a retired key signs nothing more (its request was approved before the retirement)
    wallet = wallet_by_id(session, evidence.wallet_id)
    key = key_by_id(session, wallet.key_id)
    if key.retired_at is not None:
        _fail(session, request, f"key {key.label} of wallet {wallet.name} was retired")
        return None
    lifecycle.move(
        session,
        request,
        RequestStatus.SIGNING,
        actor=f"worker:{worker_id}",
        reason="claimed again: the previous lease ran out" if reclaimed_from else "claimed",
        lease=Lease(worker_id, now + timedelta(seconds=lease_seconds)),
        digest=request.digest,
        key=key.label,
        attempt=request.signing_attempts + 1,
        reclaimed_from=reclaimed_from,
    )
    return Claim(
        request.id,
        digest,
        payload,
        key.label,
        wallet.address,
        request.signing_attempts,
        wallet_id=evidence.wallet_id,
        token=key.token,
        owner_tokens=_owner_tokens(session, payload),
        executor_token=_executor_token(session, payload),
        wallet_name=wallet.name,
        http_request_id=request.http_request_id,
    )


def _owner_tokens(session: Session, payload: dict[str, Any]) -> tuple[str | None, ...]:
    """The token of each owner key of a PSBT or Safe payload (`keys.token`); () for others."""
    if payload.get("type") == SAFE_TX and isinstance(payload.get("owners"), list):
        labels = [o.get("key") if isinstance(o, dict) else None for o in payload["owners"]]
    elif payload.get("type") == BITCOIN_PSBT and isinstance(payload.get("owners"), list):
        labels = list(payload["owners"])
    else:
        return ()
    tokens: list[str | None] = []
    for label in labels:
        key = None if label is None else find_key(session, str(label))
        # A held label with no key row signs nowhere: its token's answer (no such key) fails it.
        tokens.append(None if label is None else (key.token if key is not None else ""))
    return tuple(tokens)


def _executor_token(session: Session, payload: dict[str, Any]) -> str:
    executor = payload.get("executor") if payload.get("type") == SAFE_TX else None
    if not isinstance(executor, dict):
        return ""
    key = find_key(session, str(executor.get("key")))
    return key.token if key is not None else ""


def _owners_away(session: Session, request: Request, waiting_tokens: Collection[str]) -> bool:
    """A multisig PSBT whose reachable owner keys fall short waits, unclaimed."""
    if not waiting_tokens:
        return False
    payload = json.loads(request.payload)
    owner_tokens = _owner_tokens(session, payload)
    if not owner_tokens:
        return False
    try:
        if payload.get("type") == SAFE_TX:
            executor = _executor_token(session, payload)
            return safe_owners_away(payload, owner_tokens, executor, waiting_tokens)
        return owners_away(payload, owner_tokens, waiting_tokens)
    except Exception:  # a payload that no longer decodes is failed by the claim itself
        return False


def _checked_evidence(
    session: Session, request: Request, max_fee_wei: int
) -> tuple[Evidence, Digest] | None:
    """The client's evidence and its payload's digest, or None once the request is failed."""
    try:
        evidence = rederive(session, request)
        digest = handler_for(evidence.payload).digest(evidence.payload)
    except EvidenceRefused as exc:
        problem: str | None = f"evidence: {exc.message}"
    except Exception as exc:  # any decoding failure must fail closed
        problem = f"payload no longer decodes: {exc}"
    else:
        problem = _disagreement(request, evidence, digest) or _over_fee_cap(evidence, max_fee_wei)
    if problem is not None:
        _fail(session, request, problem)
        return None
    return evidence, digest


def _disagreement(request: Request, evidence: Evidence, digest: Digest) -> str | None:
    """What the row says that the client's evidence does not, if anything."""
    if digest.prefixed() != request.digest or evidence.digest != request.digest:
        return "evidence: the payload does not match its approved digest"
    if evidence.payload != json.loads(request.payload):
        return "evidence: the stored payload differs from the client's body"
    if evidence.wallet_id != request.wallet_id:
        return "evidence: the stored wallet is not the one the client named"
    return None


def _over_fee_cap(evidence: Evidence, max_fee_wei: int) -> str | None:
    """A fill recorded at intake is a row like any other: an edited one that raised the fees
    past the installation's cap gets nothing signed (intake checked the same cap)."""
    fees = payload_fees(evidence.payload)  # a Safe's: its executor's execTransaction
    if fees is None:
        return None
    fee = fees[0] * fees[1]
    if fee > max_fee_wei:
        return (
            f"the transaction may pay up to {fee} wei in fees, above this installation's cap "
            f"of {max_fee_wei} (CUSTODY_MAX_TX_FEE_WEI)"
        )
    return None


def sign(signer: Signer, claim: Claim) -> dict[str, str]:
    """(5) sign the fixed digest in the HSM; (6) assemble and verify in software."""
    return handler_for(claim.payload).sign(
        signer, claim.key_label, claim.address, claim.payload, claim.digest
    )


def sign_on(tokens: Tokens, claim: Claim) -> dict[str, str]:
    """`sign` with each key on its own token: a PSBT's owner keys each on theirs."""
    handler = handler_for(claim.payload)
    if isinstance(handler, SafeTxHandler):
        return handler.sign_on(
            tokens,
            claim.owner_tokens,
            claim.executor_token,
            claim.address,
            claim.payload,
            claim.digest,
        )
    if isinstance(handler, BitcoinPsbtHandler) and claim.owner_tokens:
        return handler.sign_on(
            tokens, claim.owner_tokens, claim.address, claim.payload, claim.digest
        )
    return sign(tokens.signer(claim.token), claim)


def finish(session: Session, claim: Claim, result: dict[str, str], *, worker_id: str) -> bool:
    """(7) record the signature; only now, once committed, can anyone see it."""
    request = requests.locked(session, claim.request_id, for_update=True)
    if request.status != RequestStatus.SIGNING or request.claimed_by != worker_id:
        return False  # our lease ran out and another worker took over; its result stands
    # (7a) a freeze that came while the HSM signed: the signature is dropped, never released;
    #      the request stays `signing` and is signed again once lifted and its lease ran out
    if freezes.withhold(
        session,
        request_id=request.id,
        wallet_id=claim.wallet_id,
        digest=request.digest,
        actor=f"worker:{worker_id}",
    ):
        return False
    failpoints.hit("before-signed-commit")
    signed_data: dict[str, Any] = dict(result)  # raw_transaction and tx_hash, or signature
    request.result_raw = result.get("raw_transaction")
    request.result_tx_hash = result.get("tx_hash") or result.get("txid")
    request.result_psbt = result.get("psbt")
    request.result_signature = result.get("signature")
    lifecycle.move(
        session,
        request,
        RequestStatus.SIGNED,
        actor=f"worker:{worker_id}",
        reason="signed in the HSM and verified in software",
        digest=request.digest,
        attempt=claim.attempt,
        **signed_data,
    )
    return True


def defer(session: Session, request_id: str, reason: str, *, worker_id: str) -> None:
    """The HSM could not sign now: back to `approved`, keeping approvals, nonce and limit
    reservation, to be claimed (and re-checked) again once the HSM is back."""
    request = requests.locked(session, request_id, for_update=True)
    if request.status != RequestStatus.SIGNING or request.claimed_by != worker_id:
        return
    lifecycle.move(
        session,
        request,
        RequestStatus.APPROVED,
        actor=f"worker:{worker_id}",
        reason=reason,
        digest=request.digest,
        attempt=request.signing_attempts,
    )


def fail(session: Session, request_id: str, reason: str, *, worker_id: str) -> None:
    request = requests.locked(session, request_id, for_update=True)
    if request.status != RequestStatus.SIGNING or request.claimed_by != worker_id:
        return
    _fail(session, request, reason)


def _fail(session: Session, request: Request, reason: str) -> None:
    lifecycle.move(session, request, RequestStatus.FAILED, actor="signer", reason=reason)


def _recheck_allows(
    session: Session,
    request: Request,
    facts: RequestFacts,
    digest: Digest,
    relying_party: RelyingParty,
    *,
    configuration: ConfigurationGate,
    worker_id: str,
) -> bool:
    """Whether the policy allows `request` now; raises _SigningStopped (having frozen signing)
    when a limit cannot be judged on evidence."""
    counted = CountedEvidence()
    try:
        active, decision = decide(session, facts, exclude_request=request.id, believe=counted)
    except CountedEvidenceRefused as exc:
        log.error("signing stopped: %s", exc.message)
        limit_evidence_refused(
            session,
            request_id=request.id,
            counted=exc.request_id,
            limit_id=exc.limit_id,
            detail=exc.detail,
            worker_id=worker_id,
        )
        raise _SigningStopped from None
    # The counted requests' clients' keys (and their wallets) are rows like the claim's own:
    # the limits believed them only if they are the sealed ones.
    others = Scope(
        client_ids=frozenset(counted.client_ids - {request.client_id}),
        wallet_ids=frozenset(counted.wallet_ids - {request.wallet_id}),
        approver_ids=frozenset(),
    )
    if others.client_ids or others.wallet_ids:
        verdict = configuration.check(session, others)
        if verdict.refused is not None:
            configuration_refused(session, reason=verdict.refused, worker_id=worker_id)
            raise _SigningStopped
        if verdict.waiting is not None:
            raise _AwaitingQuorum
    # A rejection that verifies ends the request whatever the policy asks for now: only an
    # insider moves a rejected request back to `approved` (issue 9 §1).
    rejected_by = verified_rejection(
        session,
        request_id=request.id,
        payload_digest=digest.prefixed(),
        relying_party=relying_party,
    )
    allowed = decision.decision == "allow" and rejected_by is None
    discounted: tuple[Discounted, ...] = ()
    if decision.decision == "require_approvals" and rejected_by is None:
        # Approvals given so far must meet what the policy requires now, counted with the
        # approvers' current groups and standing (invariants 6 and 8), and only those whose
        # signature verifies over the statement for this digest (issue 9 §1): a row is not
        # an approval.
        quorum = verified_quorum(
            session,
            request_id=request.id,
            payload_digest=digest.prefixed(),
            decision=stored_decision(decision),
            relying_party=relying_party,
        )
        allowed = quorum.state.met
        discounted = quorum.discounted
    ledger.append(
        session,
        EventKind.POLICY_RECHECKED,
        "signer",
        {
            "request": request.id,
            "policy_digest": active.digest if active else None,
            "result": decision.to_dict(),
            "allowed": allowed,
            **({"rejected_by": rejected_by} if rejected_by else {}),
        },
    )
    if rejected_by is not None:
        lifecycle.move(
            session,
            request,
            RequestStatus.REJECTED,
            actor="signer",
            reason=f"rejected by approver {rejected_by} (the rejection's signature verified "
            "again before signing)",
        )
    elif not allowed:
        _stop(session, request, decision, discounted)
    return allowed


def _stop(
    session: Session, request: Request, decision: Decision, discounted: tuple[Discounted, ...]
) -> None:
    """Back to approvals under what the policy asks for now, or rejected."""
    reason = f"policy re-check before signing: {decision.reason}"
    if discounted:
        names = ", ".join(item.approver for item in discounted)
        reason += f"; approvals that did not verify were not counted ({names})"
    if not isinstance(decision, RequireApprovals):
        lifecycle.move(session, request, RequestStatus.REJECTED, actor="signer", reason=reason)
        return
    # Approvers are judged against the requirement in force now, with a fresh deadline: the
    # request must neither wait under a decision nobody can meet nor hold its nonce forever.
    request.policy_decision = json.dumps(decision.to_dict(), sort_keys=True)
    request.expires_at = approval_deadline(decision, utcnow())
    lifecycle.move(
        session,
        request,
        RequestStatus.PENDING_APPROVAL,
        actor="signer",
        reason=reason,
        expires_at=rfc3339(request.expires_at),
    )
