"""The tables of custody. Relationships are not mapped: only repositories query, explicitly.

Invariants the database enforces by itself:
- one live request per wallet and EVM nonce (`uq_requests_wallet_nonce_live`), so two different
  payloads for the same nonce can never both reach `signing`/`signed` (invariant 4);
- one request per client and idempotency key;
- one use per client nonce of an API token;
- the ledger refuses UPDATE and DELETE (triggers, created in the migration).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from custody.store.base import Base, UtcDateTime

LIVE_STATUSES = ("pending_approval", "approved", "signing", "signed")
_LIVE_SQL = "status IN ('pending_approval', 'approved', 'signing', 'signed')"


class Chain(Base):
    __tablename__ = "chains"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    evm_chain_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    native_asset: Mapped[str] = mapped_column(String(16))
    native_decimals: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Asset(Base):
    """A token custody knows: its symbol on a chain, contract and decimals."""

    __tablename__ = "assets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    symbol: Mapped[str] = mapped_column(String(16))
    chain_id: Mapped[int] = mapped_column(ForeignKey("chains.id"))
    contract: Mapped[str] = mapped_column(String(42))
    decimals: Mapped[int] = mapped_column(Integer)
    standard: Mapped[str] = mapped_column(String(16), server_default="erc20")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        UniqueConstraint("chain_id", "symbol"),
        UniqueConstraint("chain_id", "contract"),
    )


class Venue(Base):
    """A trading venue whose EIP-712 orders custody may sign."""

    __tablename__ = "venues"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    chain_id: Mapped[int] = mapped_column(ForeignKey("chains.id"))
    verifying_contract: Mapped[str] = mapped_column(String(42))
    # JSON: {"PrimaryType": {"notional_field": "...", "asset": "SYMBOL"}}
    primary_types: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ReferencePrice(Base):
    """The USD reference price of an asset, as last set; amount_usd_* rules read it."""

    __tablename__ = "reference_prices"

    asset: Mapped[str] = mapped_column(String(16), primary_key=True)
    usd_per_unit: Mapped[str] = mapped_column(String(64))
    decimals: Mapped[int] = mapped_column(Integer)
    as_of: Mapped[datetime] = mapped_column(UtcDateTime())


class Key(Base):
    __tablename__ = "keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(64), unique=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    token: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Wallet(Base):
    __tablename__ = "wallets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    chain_id: Mapped[int] = mapped_column(ForeignKey("chains.id"))
    key_id: Mapped[int] = mapped_column(ForeignKey("keys.id"))
    address: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (UniqueConstraint("chain_id", "address"),)


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    public_key_pem: Mapped[str] = mapped_column(Text)
    # `trading` clients submit requests; `auditor` clients may only read the ledger.
    role: Mapped[str] = mapped_column(String(16), server_default="trading")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class ClientNonce(Base):
    """Burnt API-token nonces; kept until the token could no longer be accepted anyway."""

    __tablename__ = "client_nonces"

    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class PolicyVersion(Base):
    """Every applied policy, immutable; the active one is the newest."""

    __tablename__ = "policy_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    source_name: Mapped[str] = mapped_column(String(200))
    source_text: Mapped[str] = mapped_column(Text)
    applied_by: Mapped[str] = mapped_column(String(100))
    applied_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Request(Base):
    __tablename__ = "requests"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    body_hash: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"))
    asset: Mapped[str] = mapped_column(String(16))
    amount: Mapped[str] = mapped_column(String(80))
    destination: Mapped[str | None] = mapped_column(String(64), nullable=True)
    evm_nonce: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(66))
    summary: Mapped[str] = mapped_column(Text)
    policy_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("policy_versions.id"), nullable=True
    )
    policy_decision: Mapped[str] = mapped_column(Text)
    # The facts the policy judged (JSON), fixed at intake with the payload: the signer's
    # re-check and the limits judge the same facts again, never a re-interpretation.
    facts: Mapped[str | None] = mapped_column(Text, nullable=True)
    first_response: Mapped[str] = mapped_column(Text)
    result_raw: Mapped[str | None] = mapped_column(Text, nullable=True)
    result_tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    result_signature: Mapped[str | None] = mapped_column(String(140), nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    signing_attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        UniqueConstraint("client_id", "idempotency_key"),
        Index(
            "uq_requests_wallet_nonce_live",
            "wallet_id",
            "evm_nonce",
            unique=True,
            sqlite_where=text(_LIVE_SQL),
            postgresql_where=text(_LIVE_SQL),
        ),
        Index("ix_requests_status_updated_at", "status", "updated_at"),
        Index("ix_requests_client_id_created_at", "client_id", "created_at"),
        CheckConstraint(
            "status IN ('pending_approval', 'approved', 'signing', 'signed', 'rejected', "
            "'expired', 'cancelled', 'failed')",
            name="status_known",
        ),
    )


class LedgerEntry(Base):
    """One append-only record. `entry` holds the exact RFC 8785 bytes that auditors hash."""

    __tablename__ = "ledger_entries"

    index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    time: Mapped[datetime] = mapped_column(UtcDateTime())
    kind: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LedgerHead(Base):
    """A single row whose update serialises index assignment: no gaps, no duplicates."""

    __tablename__ = "ledger_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


class LedgerNode(Base):
    """Hash of the perfect subtree of 2^level leaves starting at leaf index * 2^level."""

    __tablename__ = "ledger_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LedgerCheckpoint(Base):
    """A signed note (C2SP tlog-checkpoint in a signed-note envelope) for one tree size."""

    __tablename__ = "ledger_checkpoints"

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class LedgerPublication(Base):
    """Which checkpoints were published to which witness target (file path or URL)."""

    __tablename__ = "ledger_publications"

    target: Mapped[str] = mapped_column(String(500), primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    published_at: Mapped[datetime] = mapped_column(UtcDateTime())
