"""Governance of the configuration: under `governance`, a seal widens what the signer trusts
only once the quorum approves it.

The root key in the HSM seals every configuration change as it commits (custody.seals). That
stops a database insider, but not whoever holds the HSM PIN: an operator could add a client
with their own key, or point a wallet's approvers at themselves, and the root key would seal
it. So when the configuration in effect has `governance` in its active policy, a newer seal
takes effect for the signer only when one of these holds:

- its approvals meet that governance: each approver of a governing group signs, with the device
  key the configuration in effect gives them, the RFC 8785 JSON of

      {"type": "custody.configuration_approval.v1", "epoch": "<n>", "digest": "<sha256>",
       "decision": "approve" | "reject", "approver": "<name>"}

  (`custody config approve` or `POST /v1/configuration/seals/{epoch}/approvals`); a valid
  rejection keeps the seal out;
- everything it changes is allowed alone: a reference price (the operator's feed), a client,
  approver or key disabled or retired (only narrows what gets signed), or a policy version the
  same governance approved (custody.approvals.policy_approvals; no second approval).

The signer walks the seals from the first one (sealed at `custody init`), judging each against
the governance of the one in effect before it, and checks the rows a claim relies on against
the result: the seal in effect plus the newer changes allowed alone. Rows that equal a newer
seal still waiting for its quorum are not an insider's edit: the requests relying on them wait,
and signing is not frozen. Everything here is verified from signatures: approval rows, policy
approval rows and the governing groups come from sealed documents and device-key signatures,
never from rows taken on trust.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import rfc8785
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from custody.approvals import repository
from custody.approvals.ceremony_approvals import governance
from custody.approvals.deciders import decision_fields, enabled_with_device_key
from custody.approvals.engine import QuorumState, Requirement, Vote, count_quorum
from custody.approvals.errors import (
    ApprovalConflict,
    ApprovalRefused,
    BadApprovalSignature,
)
from custody.approvals.policy_approvals import statement_for as policy_statement_for
from custody.approvals.statement import DECISIONS, verify_device_signature
from custody.errors import Conflict, NotFound
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.policy.loader import load_stored_policy_text
from custody.policy_versions.governance import QuorumJson, governance_quorums
from custody.seals.document import (
    Document,
    Item,
    changed_items,
    describe,
    differences,
)
from custody.seals.service import ConfigurationRefused, RootKey, Verified, sealed_document
from custody.store.base import utcnow
from custody.store.database import database_key
from custody.store.models import (
    Approver,
    ConfigurationApproval,
    ConfigurationSeal,
)

STATEMENT_TYPE = "custody.configuration_approval.v1"
# The operator's price feed: sealed by the root key, never waiting for a quorum.
OPERATOR_SECTIONS = frozenset({"prices"})
# Set from empty, these only narrow what can be signed.
NARROWING_FIELDS = frozenset({"disabled_at", "retired_at"})


class ConfigurationUngoverned(Conflict):
    title = "No governance"
    slug = "configuration-ungoverned"


def statement(epoch: int, digest: str, approver: str, decision: str) -> bytes:
    if decision not in DECISIONS:
        raise ValueError(f"decision must be approve or reject, got {decision!r}")
    return bytes(
        rfc8785.dumps(
            {
                "type": STATEMENT_TYPE,
                "epoch": str(epoch),
                "digest": digest,
                "decision": decision,
                "approver": approver,
            }
        )
    )


def statement_template(epoch: int, digest: str) -> dict[str, str]:
    """The statement without `decision` and `approver`, which each approver adds."""
    return {"type": STATEMENT_TYPE, "epoch": str(epoch), "digest": digest}


# --- who governs a sealed configuration ------------------------------------------------------


@dataclass(frozen=True)
class Member:
    approver_id: str
    name: str
    public_key: str
    groups: frozenset[str]


@dataclass(frozen=True)
class Governors:
    """The quorum a sealed configuration asks of the next one, and who may give it."""

    requirements: tuple[Requirement, ...]
    members: dict[str, Member]

    def votes(
        self,
        signed: Sequence[tuple[str, str, str]],
        decision: str,
        expected: Callable[[str], bytes],
    ) -> list[Vote]:
        """Votes from the (approver id, decision, signature) rows deciding `decision` whose
        signature verifies over `expected(name)` with the member's sealed device key."""
        votes = []
        for approver_id, decided, signature in signed:
            member = self.members.get(approver_id)
            if member is None or decided != decision:
                continue
            if verify_device_signature(member.public_key, signature, expected(member.name)):
                votes.append(Vote(member.approver_id, member.name, member.groups))
        return votes

    def staffed(self) -> bool:
        """Whether its members, all approving, could meet the quorum."""
        everyone = [Vote(m.approver_id, m.name, m.groups) for m in self.members.values()]
        return count_quorum(self.requirements, everyone).met


def governors(session: Session, document: Document) -> Governors | None:
    """The governance of `document`'s active policy (the newest applied version it seals), with
    its members' device keys and groups as it seals them; None without governance."""
    policies = document.sections.get("policies", {})
    if not policies:
        return None
    version_id = max(policies, key=int)
    quorums = _governance_of(session, int(version_id), str(policies[version_id].get("digest")))
    if quorums is None:
        return None
    requirements = tuple(Requirement(str(q["group"]), int(q["count"])) for q in quorums)
    governing = {r.group for r in requirements}
    members = {
        approver_id: Member(approver_id, item["name"], item["device_public_key"], groups)
        for approver_id, item in document.sections.get("approvers", {}).items()
        if item.get("disabled_at") is None
        and item.get("device_public_key")
        and (groups := frozenset(item.get("groups", ())) & governing)
    }
    return Governors(requirements, members)


# A policy's governance by the digest a seal names for it: the digest binds the text, so the
# text is read and parsed once per process, not once per seal walked.
_governance_by_digest: dict[str, QuorumJson | None] = {}


def _governance_of(session: Session, version_id: int, sealed_digest: str) -> QuorumJson | None:
    with _lock:
        if sealed_digest in _governance_by_digest:
            return _governance_by_digest[sealed_digest]
    stored = repository.policy_text(session, version_id)
    loaded = None if stored is None else load_stored_policy_text(*stored)
    if loaded is None or loaded.digest != sealed_digest:
        raise ConfigurationRefused(
            f"policy version {version_id}, which a seal names, is missing or does not match the "
            "digest sealed for it"
        )
    quorums = governance_quorums(loaded)
    with _lock:
        if len(_governance_by_digest) >= 4 * _CACHE_LIMIT:
            _governance_by_digest.clear()
        _governance_by_digest[sealed_digest] = quorums
    return quorums


# --- the seal in effect ----------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """A seal newer than the one in effect, waiting for the governance quorum."""

    epoch: int
    digest: str
    needs_quorum: list[str]
    quorum: QuorumState
    rejected_by: tuple[str, ...]


@dataclass(frozen=True)
class Effective:
    epoch: int
    """The newest seal in effect: the quorum (or no governance) let it take effect."""
    document: Document
    """What the signer trusts: that seal, plus the newer changes allowed alone."""
    pending: tuple[Pending, ...] = ()

    def waiting_reason(self, found: list[str]) -> str:
        epochs = ", ".join(str(p.epoch) for p in self.pending)
        return (
            f"configuration seal {epochs} waits for the governance quorum "
            f"(`custody config pending`): {'; '.join(found[:5])}"
        )


@dataclass(frozen=True)
class _InEffect:
    epoch: int
    signature: bytes
    document: Document
    governing: Governors | None
    """Who must approve the next seal; None while it needs no quorum: the document has no
    governance, or it was never staffed (enough members to meet it) here or in an earlier seal
    in effect. Until first staffed, the operator adds the governors; once staffed, disabling
    members never hands control back."""

    @classmethod
    def of(
        cls, session: Session, row: ConfigurationSeal, document: Document, was_governed: bool
    ) -> _InEffect:
        found = governors(session, document)
        governed = found is not None and (was_governed or found.staffed())
        return cls(row.epoch, row.signature, document, found if governed else None)


_lock = threading.Lock()
_in_effect: dict[tuple[str, bytes], _InEffect] = {}
_walks: dict[tuple[str, bytes], tuple[tuple[Any, ...], Effective]] = {}
_CACHE_LIMIT = 16


def effective(session: Session, root: RootKey, newest: ConfigurationSeal) -> Effective:
    """The configuration in effect, the newest seal being `newest`; every seal's signature is
    checked with `root`, the installation root key read from the HSM."""
    key = (database_key(session), root.public_key)
    with _lock:
        known = _in_effect.get(key)
    if known is not None and (known.epoch, known.signature) == (newest.epoch, newest.signature):
        return Effective(known.epoch, known.document)
    if known is not None and not _still_sealed(session, known):
        known = None
    after = 0 if known is None else known.epoch
    marker = (
        newest.epoch,
        newest.signature,
        after,
        *repository.configuration_decisions_marker(session, after),
    )
    with _lock:
        walked = _walks.get(key)
    if walked is not None and walked[0] == marker:
        return walked[1]
    found, in_effect = _walk(session, root, known)
    with _lock:
        if len(_in_effect) >= _CACHE_LIMIT:
            _in_effect.clear()
            _walks.clear()
        _in_effect[key] = in_effect
        _walks[key] = (marker, found)
    return found


def waiting_reason(session: Session, root: RootKey, verified: Verified, whole: bool) -> str | None:
    """custody.seals.gate's governance: why rows found equal to the newest seal (all of them
    when `whole`, else a claim's scope) rely on something not in effect yet; None if nothing."""
    found_effective = effective(session, root, verified.seal)
    if found_effective.epoch == verified.seal.epoch:
        return None
    found = differences(found_effective.document, verified.rows, whole=whole)
    return found_effective.waiting_reason(found) if found else None


def _still_sealed(session: Session, known: _InEffect) -> bool:
    return repository.seal_signature(session, known.epoch) == known.signature


def _walk(session: Session, root: RootKey, known: _InEffect | None) -> tuple[Effective, _InEffect]:
    rows = repository.seals_after(session, 0 if known is None else known.epoch)
    in_effect = known
    waiting: list[tuple[Pending, Document]] = []
    for row in rows:
        document = sealed_document(row, root)
        if in_effect is None:
            # The first seal, made by `custody init`, is where the chain starts.
            in_effect = _InEffect.of(session, row, document, was_governed=False)
            continue
        governing = in_effect.governing
        judged = (
            None
            if governing is None
            else _judge(session, governing, in_effect.document, row, document)
        )
        if judged is None:
            in_effect, waiting = _InEffect.of(session, row, document, governing is not None), []
        else:
            waiting.append((judged, document))
    if in_effect is None:
        raise ConfigurationRefused(
            "the configuration has never been sealed: run `custody init` with access to the HSM"
        )
    if not waiting:
        return Effective(in_effect.epoch, in_effect.document), in_effect
    # a seal waits only under a quorum: `governing` is set
    assert in_effect.governing is not None
    merged = _with_changes_allowed_alone(
        session, in_effect.governing, in_effect.document, waiting[-1][1]
    )
    return Effective(in_effect.epoch, merged, tuple(p for p, _ in waiting)), in_effect


def _judge(
    session: Session,
    governing: Governors,
    before: Document,
    row: ConfigurationSeal,
    after: Document,
) -> Pending | None:
    """None when `row` takes effect after `before`, which `governing` governs; else what it
    waits for."""
    needs = [
        describe(section, name, was, now)
        for section, name, was, now in changed_items(before, after)
        if not _allowed_alone(session, governing, (section, name, was, now))
    ]
    if not needs:
        return None
    signed = repository.configuration_decisions(session, row.epoch)
    votes = governing.votes(
        signed, "approve", lambda name: statement(row.epoch, row.digest, name, "approve")
    )
    rejected_by = tuple(
        vote.name
        for vote in governing.votes(
            signed, "reject", lambda name: statement(row.epoch, row.digest, name, "reject")
        )
    )
    quorum = count_quorum(governing.requirements, votes)
    if quorum.met and not rejected_by:
        return None
    return Pending(row.epoch, row.digest, needs, quorum, rejected_by)


def _allowed_alone(
    session: Session,
    governing: Governors,
    change: tuple[str, str, Item | None, Item | None],
) -> bool:
    section, name, was, now = change
    if section in OPERATOR_SECTIONS:
        return True
    if was is not None and now is not None:
        fields = {f for f in set(was) | set(now) if was.get(f) != now.get(f)}
        return fields <= NARROWING_FIELDS and all(
            was.get(f) is None and now.get(f) is not None for f in fields
        )
    if section == "policies" and was is None and now is not None:
        return _policy_approved(session, governing, int(name), str(now.get("digest")))
    return False


def _policy_approved(session: Session, governing: Governors, version_id: int, digest: str) -> bool:
    """Whether the governance quorum approved policy version `version_id` with this digest:
    counted from signatures with the sealed device keys, like any approval here."""
    signed = repository.policy_decisions(session, version_id)
    votes = governing.votes(
        signed, "approve", lambda name: policy_statement_for(version_id, digest, name, "approve")
    )
    return count_quorum(governing.requirements, votes).met


def _with_changes_allowed_alone(
    session: Session, governing: Governors, before: Document, after: Document
) -> Document:
    sections = {name: dict(items) for name, items in before.sections.items()}
    for section, name, was, now in changed_items(before, after):
        if _allowed_alone(session, governing, (section, name, was, now)):
            if now is None:
                sections.get(section, {}).pop(name, None)
            else:
                sections.setdefault(section, {})[name] = now
    return Document(sections)


# --- recording decisions ---------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedDecision:
    """A decision whose signature verified with the approver's device key now: the signer
    counts it only if it also verifies with the key the configuration in effect seals."""

    epoch: int
    digest: str
    approver_id: str
    approver_name: str
    decision: str
    statement: bytes
    signature: str
    public_key: str


@dataclass(frozen=True)
class Recorded:
    epoch: int
    approver: str
    decision: str


def verify_decision(
    session: Session, *, epoch: int, approver_name: object, decision: object, signature: object
) -> VerifiedDecision:
    """Check one approver's decision on a seal, in a read transaction (anyone may post one)."""
    name, decision, signature = decision_fields(approver_name, decision, signature)
    row = session.get(ConfigurationSeal, epoch)
    if row is None:
        raise NotFound(f"no configuration seal {epoch}")
    approver, public_key = enabled_with_device_key(session, name)
    _check_governor(session, approver)
    signed = statement(row.epoch, row.digest, approver.name, decision)
    if not verify_device_signature(public_key, signature, signed):
        raise BadApprovalSignature(
            "signature does not verify over this seal's statement (RFC 8785 of type, epoch, "
            "digest, decision, approver)"
        )
    return VerifiedDecision(
        row.epoch,
        row.digest,
        approver.id,
        approver.name,
        decision,
        signed,
        signature,
        public_key,
    )


def _check_governor(session: Session, approver: Approver) -> None:
    """Refuse, clearly, a decision that can never count: the signer counts only governors."""
    quorums = governance(session)
    if quorums is None:
        raise ConfigurationUngoverned(
            "the active policy has no governance: configuration changes take effect as sealed"
        )
    groups = repository.membership(session, [approver.id]).get(approver.id, set())
    if not {str(q["group"]) for q in quorums} & groups:
        raise ApprovalRefused(f"approver {approver.name} is not in a group that governs custody")


def record_decision(session: Session, verified: VerifiedDecision) -> Recorded:
    """Record a verified decision under the ledger lock, once per approver and seal."""
    ledger.lock(session)
    row = session.get(ConfigurationSeal, verified.epoch)
    if row is None or row.digest != verified.digest:
        raise ApprovalConflict(f"configuration seal {verified.epoch} changed meanwhile")
    approver = session.get(Approver, verified.approver_id)
    if approver is None or approver.device_public_key != verified.public_key:
        raise ApprovalRefused("the approver's device key changed while the approval was verified")
    _check_governor(session, approver)
    try:
        with session.begin_nested():
            session.add(
                ConfigurationApproval(
                    epoch=verified.epoch,
                    digest=verified.digest,
                    approver_id=verified.approver_id,
                    decision=verified.decision,
                    statement=verified.statement,
                    signature=verified.signature,
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        raise ApprovalConflict(
            f"{verified.approver_name} already decided on configuration seal {verified.epoch}"
        ) from None
    ledger.append(
        session,
        EventKind.APPROVAL_ADDED,
        f"approver:{verified.approver_id}",
        {
            "configuration_seal": verified.epoch,
            "digest": verified.digest,
            "approver": verified.approver_name,
            "decision": verified.decision,
            "statement": verified.statement.decode(),
            "evidence": {"signature": verified.signature},
        },
    )
    return Recorded(verified.epoch, verified.approver_name, verified.decision)
