"""Request states and the transitions allowed between them."""

from enum import StrEnum


class RequestStatus(StrEnum):
    APPROVED = "approved"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"
    PENDING_APPROVAL = "pending_approval"
    REJECTED = "rejected"
    SIGNED = "signed"
    SIGNING = "signing"


TERMINAL = frozenset(
    {
        RequestStatus.SIGNED,
        RequestStatus.REJECTED,
        RequestStatus.EXPIRED,
        RequestStatus.CANCELLED,
        RequestStatus.FAILED,
    }
)

TRANSITIONS: dict[RequestStatus, frozenset[RequestStatus]] = {
    RequestStatus.PENDING_APPROVAL: frozenset(
        {
            RequestStatus.APPROVED,
            RequestStatus.REJECTED,
            RequestStatus.EXPIRED,
            RequestStatus.CANCELLED,
        }
    ),
    RequestStatus.APPROVED: frozenset(
        {
            RequestStatus.SIGNING,
            RequestStatus.REJECTED,
            RequestStatus.PENDING_APPROVAL,
            RequestStatus.CANCELLED,
            RequestStatus.FAILED,
        }
    ),
    # A signing lease that ran out is re-claimed: signing -> signing.
    RequestStatus.SIGNING: frozenset(
        {
            RequestStatus.SIGNED,
            RequestStatus.SIGNING,
            RequestStatus.FAILED,
            RequestStatus.REJECTED,
            RequestStatus.PENDING_APPROVAL,
        }
    ),
}


def can_move(current: RequestStatus, target: RequestStatus) -> bool:
    return target in TRANSITIONS.get(current, frozenset())
