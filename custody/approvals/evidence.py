"""What the signer believes about approvals: each approver's signature, not the row (issue 9 §1).

A database insider can insert an approval row with any evidence, copy a valid one from another
request, edit its statement or flip its decision. So before an approval counts towards a quorum
at signing time, the signer verifies it again from what the approver signed:

1. the statement is rebuilt from the request id, the payload digest the signer derived itself
   from the client's evidence, the row's decision and the approver's name; the stored bytes must
   be exactly these;
2. a device-key approval's Ed25519 signature verifies over them with the approver's current
   device key, the key its evidence names;
3. a passkey approval's credential is registered to that approver, and its assertion verifies
   over SHA-256 of them for this installation's relying party, with the user verified.

An approval that fails does not count; each one is ledgered (`approval.discounted`, with the
reason) in the claim's transaction and logged. Rejections are looked for the same way
(`verified_rejection`): one that verifies stops the request whatever the policy asks for now,
so a rejected request an insider revives is rejected again. The approval endpoints keep
counting rows (custody.approvals.quorum): each row was verified as it was recorded, and they
must stay fast.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session

from custody.approvals import assertions, repository
from custody.approvals.engine import QuorumState, count_quorum
from custody.approvals.quorum import requirements, votes_now
from custody.approvals.statement import (
    statement_bytes,
    verify_device_signature,
    webauthn_challenge,
)
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.policy.stored import StoredDecision
from custody.settings import RelyingParty
from custody.store.models import Approval, Approver

log = logging.getLogger("custody.approvals")


@dataclass(frozen=True)
class Discounted:
    """An approval that did not verify, and why."""

    approver: str
    method: str
    reason: str


@dataclass(frozen=True)
class VerifiedQuorum:
    state: QuorumState
    """Counted from the approvals that verified only."""
    discounted: tuple[Discounted, ...]


def verified_quorum(
    session: Session,
    *,
    request_id: str,
    payload_digest: str,
    decision: StoredDecision,
    relying_party: RelyingParty | None,
) -> VerifiedQuorum:
    """The quorum counted from the approvals whose evidence verifies over the statement for
    `payload_digest`; each one that does not is ledgered and logged.

    `relying_party`: whom passkey assertions must answer (None: no passkey approval counts).
    """
    counted: list[tuple[str, str]] = []
    discounted: list[Discounted] = []
    for approval, approver in repository.enabled_approvals_with_approvers(session, request_id):
        statement = statement_bytes(
            request_id=request_id,
            payload_digest=payload_digest,
            decision=approval.decision,
            approver=approver.name,
        )
        reason = _why_not_counted(session, approval, approver, statement, relying_party)
        if reason is None:
            counted.append((approver.id, approver.name))
        else:
            discounted.append(_record(session, request_id, approver, approval.method, reason))
    state = count_quorum(requirements(decision), votes_now(session, counted))
    return VerifiedQuorum(state, tuple(discounted))


def verified_rejection(
    session: Session,
    *,
    request_id: str,
    payload_digest: str,
    relying_party: RelyingParty | None,
) -> str | None:
    """The name of an approver whose rejection of this request verifies, if any; a stored
    rejection that does not verify is ledgered and logged as discounted, and stops nothing."""
    for approval, approver in repository.rejections_with_approvers(session, request_id):
        statement = statement_bytes(
            request_id=request_id,
            payload_digest=payload_digest,
            decision="reject",
            approver=approver.name,
        )
        reason = _why_not_counted(session, approval, approver, statement, relying_party)
        if reason is None:
            return approver.name
        _record(session, request_id, approver, approval.method, reason)
    return None


def _why_not_counted(
    session: Session,
    approval: Approval,
    approver: Approver,
    statement: bytes,
    relying_party: RelyingParty | None,
) -> str | None:
    if bytes(approval.statement) != statement:
        return (
            "its stored statement is not the one the approver must have signed for this "
            "request, payload digest and decision"
        )
    evidence = _evidence(approval.evidence)
    if evidence is None:
        return "its stored evidence is not a JSON object of strings"
    if approval.method == "device_key":
        return _device_key_problem(approver, evidence, statement)
    if approval.method == "webauthn":
        return _passkey_problem(session, approver, evidence, statement, relying_party)
    return f"its method {approval.method!r} is not one custody knows"


def _device_key_problem(
    approver: Approver, evidence: dict[str, str], statement: bytes
) -> str | None:
    key = approver.device_public_key
    if key is None:
        return "the approver has no device key"
    if not verify_device_signature(key, evidence.get("signature", ""), statement):
        return "its signature does not verify over the statement with the approver's device key"
    if evidence.get("public_key") != key:
        # The signature is the approver's, but an auditor re-verifying from the stored evidence
        # would take the key it names: evidence that says otherwise was tampered with.
        return "its evidence names a device key that is not the approver's"
    return None


def _passkey_problem(
    session: Session,
    approver: Approver,
    evidence: dict[str, str],
    statement: bytes,
    relying_party: RelyingParty | None,
) -> str | None:
    if relying_party is None:
        return "the signer does not know this installation's passkey relying party"
    if any(field not in evidence for field in assertions.EVIDENCE_FIELDS):
        return "its evidence lacks part of the passkey assertion"
    passkey = repository.passkey(session, evidence["credential_id"])
    if passkey is None or passkey.approver_id != approver.id:
        return "its passkey is not one registered to the approver"
    try:
        # Sign count 0: the count is not required to grow here. It had to when the approval was
        # recorded (custody.web checked it against the stored count and stored the new one);
        # every later use of the passkey has since moved the stored count past this assertion's,
        # so a genuine approval would fail. A replay gains nothing: the assertion verifies only
        # over this statement, which names this request, digest, decision and approver.
        assertions.verify_assertion(
            relying_party,
            assertions.credential(evidence),
            public_key=passkey.public_key,
            challenge=webauthn_challenge(statement),
            sign_count=0,
        )
    except assertions.AssertionRefused as exc:
        return f"its passkey assertion does not verify over the statement: {exc}"
    return None


def _evidence(stored: str) -> dict[str, str] | None:
    try:
        data = json.loads(stored)
    except ValueError:
        return None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        return None
    return data


def _record(
    session: Session, request_id: str, approver: Approver, method: str, reason: str
) -> Discounted:
    """Ledger and log an approval that is not counted."""
    log.warning(
        "request %s: the approval by %s (%s) is not counted: %s",
        request_id,
        approver.name,
        method,
        reason,
    )
    ledger.append(
        session,
        EventKind.APPROVAL_DISCOUNTED,
        "signer",
        {"request": request_id, "approver": approver.name, "method": method, "reason": reason},
    )
    return Discounted(approver.name, method, reason)
