"""What the API answers, as small frozen values; `json` keeps the whole answer as received.

Only the fields every request has are typed here; the rest (`policy`, `payload`, `approvals`,
`waiting`) stay JSON, so a server newer than this client loses nothing. Amounts stay decimal
strings of base units, as on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Nothing moves a request in one of these any more.
FINAL_STATUSES = frozenset({"confirmed", "rejected", "expired", "cancelled", "failed"})
# Each of these is reached only through the ones before it: waiting until `signed` is also over
# once a request is seen `broadcast` (the long poll may answer after both changes).
SIGNED_PROGRESSION = ("signed", "broadcast", "confirmed")


@dataclass(frozen=True)
class Request:
    id: str
    status: str
    type: str
    wallet: str
    asset: str
    amount: str
    destination: str | None
    created_at: str
    result: dict[str, Any] | None
    reason: str | None
    json: dict[str, Any] = field(repr=False, compare=False)
    # True when a create was answered from an earlier call with the same Idempotency-Key.
    replayed: bool = field(default=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, replayed: bool = False) -> Request:
        result = data.get("result")
        return cls(
            id=str(data["id"]),
            status=str(data["status"]),
            type=str(data["type"]),
            wallet=str(data["wallet"]),
            asset=str(data["asset"]),
            amount=str(data["amount"]),
            destination=data.get("destination"),
            created_at=str(data["created_at"]),
            result=dict(result) if isinstance(result, Mapping) else None,
            reason=data.get("reason"),
            json=dict(data),
            replayed=replayed,
        )

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def policy(self) -> dict[str, Any]:
        """The policy decision (`decision`, `rule`, `reason`, ...)."""
        return dict(self.json.get("policy") or {})

    @property
    def payload(self) -> dict[str, Any]:
        """What is signed: `digest`, `summary`, `transaction`."""
        return dict(self.json.get("payload") or {})


@dataclass(frozen=True)
class RequestPage:
    items: list[Request]
    next_cursor: str | None
    json: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RequestPage:
        return cls(
            items=[Request.from_json(item) for item in data["items"]],
            next_cursor=data.get("next_cursor"),
            json=dict(data),
        )


@dataclass(frozen=True)
class WebhookPublicKey:
    """The key custody signs webhook bodies with: pin it after checking `key_id` out of band."""

    key_id: str
    public_key: str  # hex of the raw 32 bytes
    json: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WebhookPublicKey:
        return cls(key_id=str(data["key_id"]), public_key=str(data["public_key"]), json=dict(data))
