"""Ledger entry kinds. Alphabetised; a name once used is never reused for another meaning."""

from enum import StrEnum


class EventKind(StrEnum):
    ASSET_ADDED = "asset.added"
    CHAIN_ADDED = "chain.added"
    CLIENT_ADDED = "client.added"
    KEY_GENERATED = "key.generated"
    LEDGER_INITIALISED = "ledger.initialised"
    POLICY_APPLIED = "policy.applied"
    POLICY_EVALUATED = "policy.evaluated"
    POLICY_RECHECKED = "policy.rechecked"
    PRICE_SET = "price.set"
    REQUEST_APPROVED = "request.approved"
    REQUEST_CANCELLED = "request.cancelled"
    REQUEST_CREATED = "request.created"
    REQUEST_FAILED = "request.failed"
    REQUEST_REJECTED = "request.rejected"
    REQUEST_SIGNED = "request.signed"
    REQUEST_SIGNING = "request.signing"
    VENUE_ADDED = "venue.added"
    WALLET_CREATED = "wallet.created"
