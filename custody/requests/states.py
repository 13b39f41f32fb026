"""Request states and the one table of transitions between them.

Everything else derives from this page: the lifecycle's checks (`custody.requests.lifecycle`),
the database CHECK constraint and the live-nonce index (`custody.store.models`), which requests
hold a limit reservation (`custody.limits`), the webhooks (a status change is a ledger entry of the
lifecycle's one shape) and the docs (`docs/architecture.md` shows this table).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RequestStatus(StrEnum):
    APPROVED = "approved"
    BROADCAST = "broadcast"
    CANCELLED = "cancelled"
    CONFIRMED = "confirmed"
    EXPIRED = "expired"
    FAILED = "failed"
    PENDING_APPROVAL = "pending_approval"
    REJECTED = "rejected"
    SIGNED = "signed"
    SIGNING = "signing"


@dataclass(frozen=True)
class StateTraits:
    """What being in a state means for the rest of the system."""

    holds_nonce: bool
    """The request keeps its wallet nonce: no other live request may take it (invariant 4)."""
    reserves_limit: bool
    """Its amount counts against velocity limits while it waits (invariant 5)."""
    keeps_reason: bool
    """The reason for entering it is shown to the client as the request's `reason`."""
    terminal: bool
    """Nothing moves it any more."""


_WAITING = StateTraits(holds_nonce=True, reserves_limit=True, keeps_reason=False, terminal=False)
_SIGNED = StateTraits(holds_nonce=True, reserves_limit=False, keeps_reason=False, terminal=False)
_ENDED = StateTraits(holds_nonce=False, reserves_limit=False, keeps_reason=True, terminal=True)

TRAITS: dict[RequestStatus, StateTraits] = {
    # Entered again from a re-check, the reason says what the policy now asks for.
    RequestStatus.PENDING_APPROVAL: StateTraits(
        holds_nonce=True, reserves_limit=True, keeps_reason=True, terminal=False
    ),
    RequestStatus.APPROVED: _WAITING,
    RequestStatus.SIGNING: _WAITING,
    # A signed request keeps its nonce forever and counts against limits by when it was signed
    # (`Request.signed_at`), not as a reservation. On a chain without a node it is the end; on a
    # connected chain the broadcaster takes it on (custody.broadcast).
    RequestStatus.SIGNED: _SIGNED,
    RequestStatus.BROADCAST: _SIGNED,
    RequestStatus.CONFIRMED: StateTraits(
        holds_nonce=True, reserves_limit=False, keeps_reason=False, terminal=True
    ),
    RequestStatus.REJECTED: _ENDED,
    RequestStatus.EXPIRED: _ENDED,
    RequestStatus.CANCELLED: _ENDED,
    RequestStatus.FAILED: _ENDED,
}

# Where intake may put a new request: the policy decision picks one.
INITIAL: frozenset[RequestStatus] = frozenset(
    {RequestStatus.PENDING_APPROVAL, RequestStatus.APPROVED, RequestStatus.REJECTED}
)

TRANSITIONS: dict[RequestStatus, frozenset[RequestStatus]] = {
    # Approvers decide; the deadline passes; the client withdraws it.
    RequestStatus.PENDING_APPROVAL: frozenset(
        {
            RequestStatus.APPROVED,
            RequestStatus.REJECTED,
            RequestStatus.EXPIRED,
            RequestStatus.CANCELLED,
        }
    ),
    # The signer claims it, or its re-check of the current policy stops it (back to approvals
    # when the policy now asks for more, rejected when it now denies), or it can no longer be
    # signed (failed), or the client withdraws it.
    RequestStatus.APPROVED: frozenset(
        {
            RequestStatus.SIGNING,
            RequestStatus.REJECTED,
            RequestStatus.PENDING_APPROVAL,
            RequestStatus.CANCELLED,
            RequestStatus.FAILED,
        }
    ),
    # A signing lease that ran out is claimed again (signing -> signing), re-checked first; an
    # HSM that cannot sign now sends it back to wait (signing -> approved).
    RequestStatus.SIGNING: frozenset(
        {
            RequestStatus.SIGNED,
            RequestStatus.SIGNING,
            RequestStatus.APPROVED,
            RequestStatus.FAILED,
            RequestStatus.REJECTED,
            RequestStatus.PENDING_APPROVAL,
        }
    ),
    # The node accepted it, or refused it for good (a nonce taken, funds missing: failed).
    RequestStatus.SIGNED: frozenset({RequestStatus.BROADCAST, RequestStatus.FAILED}),
    # Sent again after the node lost it, or its receipt vanished in a reorg (broadcast ->
    # broadcast); K confirmations with status 1, or reverted (status 0) or dropped.
    RequestStatus.BROADCAST: frozenset(
        {RequestStatus.BROADCAST, RequestStatus.CONFIRMED, RequestStatus.FAILED}
    ),
    RequestStatus.CONFIRMED: frozenset(),
    RequestStatus.REJECTED: frozenset(),
    RequestStatus.EXPIRED: frozenset(),
    RequestStatus.CANCELLED: frozenset(),
    RequestStatus.FAILED: frozenset(),
}

# In the order of the flow (the order of TRAITS), which is also the order in SQL text.
ALL: tuple[RequestStatus, ...] = tuple(TRAITS)
TERMINAL: frozenset[RequestStatus] = frozenset(s for s in ALL if TRAITS[s].terminal)
HOLDS_NONCE: tuple[RequestStatus, ...] = tuple(s for s in ALL if TRAITS[s].holds_nonce)
RESERVES_LIMIT: tuple[RequestStatus, ...] = tuple(s for s in ALL if TRAITS[s].reserves_limit)


def can_move(current: RequestStatus, target: RequestStatus) -> bool:
    return target in TRANSITIONS[current]


def sql_in(statuses: tuple[RequestStatus, ...] | frozenset[RequestStatus]) -> str:
    """`status IN (...)` for constraints and partial indexes, in a stable order."""
    return "status IN (" + ", ".join(f"'{s.value}'" for s in ALL if s in statuses) + ")"
