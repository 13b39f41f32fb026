"""The tables of custody. Relationships are not mapped: only repositories query, explicitly.

Invariants the database enforces by itself:
- one live request per wallet and EVM nonce (`uq_requests_wallet_nonce_live`), so two different
  payloads for the same nonce can never both reach `signing`/`signed` (invariant 4);
- one request per client and idempotency key;
- one use per client nonce of an API token;
- one pending lift per freeze (`uq_unfreezes_freeze_id_pending`), and one decision per approver
  and lift;
- a request's status changes only along the lifecycle table (a trigger, from migration 0006);
- the ledger refuses UPDATE and DELETE (triggers, created in the migration), and so do its
  checkpoints, subtrees and fork detections.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    or_,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from custody.requests.guard import guard
from custody.requests.states import ALL, HOLDS_NONCE, sql_in
from custody.store.base import Base, UtcDateTime

# Both derive from the lifecycle table (custody.requests.states); a change there needs a migration.
LIVE_STATUSES = tuple(s.value for s in HOLDS_NONCE)
# A request that was ever signed keeps its nonce whatever happens next (a reverted or dropped
# transaction is `failed`, but its signature is out): signed_at is set once and never cleared.
_LIVE_SQL = f"{sql_in(HOLDS_NONCE)} OR signed_at IS NOT NULL"


class Chain(Base):
    __tablename__ = "chains"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    # None for chains that are not EVM (Bitcoin's networks are known by name: custody.chains).
    evm_chain_id: Mapped[int | None] = mapped_column(BigInteger, unique=True, nullable=True)
    native_asset: Mapped[str] = mapped_column(String(16))
    native_decimals: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # A chain with a node is *connected*: custody fills nonces and fees, broadcasts and follows
    # transactions to `confirmations` blocks (custody.broadcast). Neither decides what is
    # signed, so the configuration seal leaves them out, like webhook URLs.
    rpc_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    confirmations: Mapped[int] = mapped_column(Integer, server_default="1")
    # The most a transaction on this chain may offer per gas (wei, decimal string); null: only
    # the installation's cap on the whole fee (CUSTODY_MAX_TX_FEE_WEI) applies.
    max_fee_per_gas: Mapped[str | None] = mapped_column(String(80), nullable=True)


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
    # JSON: {"PrimaryType": {"sell_token": "field", "sell_amount": "field[+field]", "buy_token",
    # "buy_amount", "receiver", optional "zero_receiver": "wallet"}} (custody.catalog.venue_terms);
    # first-version rows hold {"notional_field", "asset"}, refused at intake until declared anew.
    primary_types: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ReferencePrice(Base):
    """The USD reference price of one asset on one chain, as last set; amount_usd_* rules read it.

    A token is named by its contract, the chain's native asset by `contract` NULL; `asset` is the
    symbol it had when set, and a price whose symbol and contract no longer agree with the
    catalog is ignored (custody.prices.service.reference_table).
    """

    __tablename__ = "reference_prices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain_id: Mapped[int] = mapped_column(ForeignKey("chains.id"))
    asset: Mapped[str] = mapped_column(String(16))
    contract: Mapped[str | None] = mapped_column(String(42), nullable=True)
    usd_per_unit: Mapped[str] = mapped_column(String(64))
    decimals: Mapped[int] = mapped_column(Integer)
    as_of: Mapped[datetime] = mapped_column(UtcDateTime())

    # (chain, asset) also holds one price per chain for the native asset, whose contract is NULL.
    __table_args__ = (
        UniqueConstraint("chain_id", "asset"),
        UniqueConstraint("chain_id", "contract"),
    )


class Key(Base):
    __tablename__ = "keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(64), unique=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    token: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(String(200))
    # How the private key may leave its token (custody.hsm.keys.Backup); keys made before
    # migration 0014 were all generated non-extractable.
    backup: Mapped[str] = mapped_column(String(16), server_default="none")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # Set by `custody keys retire`: its wallets sign nothing more, and the private key is
    # destroyed on the token (custody.keys.retirement).
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    __table_args__ = (CheckConstraint("backup IN ('none', 'trusted-wrap')", name="backup_known"),)


class KeyBackup(Base):
    """A key in a backup a ceremony made (`custody ceremony backup`), or restored from."""

    __tablename__ = "key_backups"

    key_id: Mapped[int] = mapped_column(ForeignKey("keys.id"), primary_key=True)
    manifest_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    ledger_index: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Wallet(Base):
    __tablename__ = "wallets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    chain_id: Mapped[int] = mapped_column(ForeignKey("chains.id"))
    key_id: Mapped[int] = mapped_column(ForeignKey("keys.id"))
    address: Mapped[str] = mapped_column(String(64))
    # Bitcoin wallets: the BIP-380 output descriptor (with checksum) whose script they spend;
    # `key_id` is then its first owner key. None for EVM wallets.
    descriptor: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (UniqueConstraint("chain_id", "address"),)


class SafeWallet(Base):
    """A wallet that is a Safe v1.4.1 multisig: M of the owner keys sign each SafeTx, and the
    executor (an EVM wallet of one key) sends `execTransaction` and pays its gas. The wallet's
    `address` is the Safe proxy's, its `key_id` the first owner key."""

    __tablename__ = "safe_wallets"

    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"), primary_key=True)
    # JSON list of owner key labels, as given at creation (the contract sorts nothing).
    owners: Mapped[str] = mapped_column(Text)
    threshold: Mapped[int] = mapped_column(Integer)
    executor_wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"))
    # The CREATE2 salt and the contracts the address was computed with: fixed at creation.
    salt_nonce: Mapped[str] = mapped_column(String(80))
    factory: Mapped[str] = mapped_column(String(42))
    singleton: Mapped[str] = mapped_column(String(42))
    deployed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    public_key_pem: Mapped[str] = mapped_column(Text)
    # `trading` clients submit requests; `auditor` clients may only read the ledger; `operator`
    # clients may freeze signing (custody.freezes) and nothing else.
    role: Mapped[str] = mapped_column(String(16), server_default="trading")
    webhook_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class ClientNonce(Base):
    """Burnt API-token nonces; kept until the token could no longer be accepted anyway."""

    __tablename__ = "client_nonces"

    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id"), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class PolicyVersion(Base):
    """Every applied or proposed policy, its text immutable; the active one is the newest
    applied. Under governance a new version is `proposed` until its quorum approves it."""

    __tablename__ = "policy_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    source_name: Mapped[str] = mapped_column(String(200))
    source_text: Mapped[str] = mapped_column(Text)
    applied_by: Mapped[str] = mapped_column(String(100))
    applied_at: Mapped[datetime] = mapped_column(UtcDateTime())
    state: Mapped[str] = mapped_column(String(16), server_default="applied", index=True)
    # JSON of the governance requirement a proposal must meet (from the policy it replaces).
    required_approvals: Mapped[str | None] = mapped_column(Text, nullable=True)


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
    # The evidence the signer believes instead of this row (issue 9): the client's exact body
    # and the token it signed the call with. The signer re-verifies the token, decodes the body
    # again and signs only what that yields; limits count other requests from theirs too.
    # Requests started in the approver app carry the app's own HSM-signed token. Null only for
    # requests stored before migration 0008 (which the signer then refuses, and whose presence
    # in a limit's window stops signing what that limit judges).
    client_body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    client_token: Mapped[str | None] = mapped_column(Text, nullable=True)
    result_raw: Mapped[str | None] = mapped_column(Text, nullable=True)
    result_tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    result_signature: Mapped[str | None] = mapped_column(String(140), nullable=True)
    # What custody filled in on a connected chain because the body left it out (JSON: nonce,
    # gas, fees): the signer decodes the client's body with exactly these again.
    evm_fill: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Where the broadcast transaction is: its receipt's block and how deep it is now.
    # A replacement of a stuck transaction names the request it replaces and signs its nonce
    # again: the one way a nonce gets a second signature. Each replacement is the next
    # generation of its nonce, and the live-nonce index is unique per generation.
    # Indexed: every view of a request asks which request replaces it.
    replaces: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    nonce_generation: Mapped[int] = mapped_column(Integer, server_default="0", default=0)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    block_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    confirmations: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # A Safe wallet's request: the executor wallet that sends `execTransaction`, and the account
    # nonce of that transaction (`evm_nonce` is then the Safe's own nonce).
    executor_wallet_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    executor_nonce: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # A Bitcoin request's PSBT with custody's signatures (base64 BIP-174).
    result_psbt: Mapped[str | None] = mapped_column(Text, nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    signing_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When a request waiting for approvals lapses (from the rule's expires_after, default 24 h).
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True, index=True)
    # Set when a person started the request in the approver app (maker); never its checker.
    # An approver id; no foreign key, because adding one to this table on SQLite means
    # rebuilding it (and its partial unique index) in the migration.
    requested_by_approver: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # The X-Request-Id of the HTTP call that created it (custody.callid): its webhooks carry it,
    # so the trading system can tie each notification to the call it made.
    http_request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # Set once, by the lifecycle, when the request becomes `signed`: limits count it from then.
    signed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        UniqueConstraint("client_id", "idempotency_key"),
        Index(
            "uq_requests_wallet_nonce_live",
            "wallet_id",
            "evm_nonce",
            "nonce_generation",
            unique=True,
            sqlite_where=text(_LIVE_SQL),
            postgresql_where=text(_LIVE_SQL),
        ),
        Index("ix_requests_status_updated_at", "status", "updated_at"),
        Index("ix_requests_client_id_created_at", "client_id", "created_at"),
        CheckConstraint(sql_in(ALL), name="status_known"),
    )


guard(Request.status)

# The SQL twin of the live-nonce index's condition, for queries.
NONCE_HELD = or_(Request.status.in_(LIVE_STATUSES), Request.signed_at.is_not(None))


class LedgerEntry(Base):
    """One append-only record. `entry` holds the exact RFC 8785 bytes that auditors hash."""

    __tablename__ = "ledger_entries"

    index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    time: Mapped[datetime] = mapped_column(UtcDateTime())
    kind: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))

    # The signer's limit re-check reads one kind of entry over a window (request.signed in the
    # last 24 h, say) on every claim: without `time` in the index that read grows with history.
    __table_args__ = (Index("ix_ledger_entries_kind_time", "kind", "time"),)


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


class LedgerKey(Base):
    """A checkpoint key of the ledger and the tree sizes it signs from (custody.ledger.keys).

    Empty until the first `custody ledger rotate-key`: until then the key labelled
    CUSTODY_LEDGER_KEY_LABEL signs every checkpoint. A rotation records the key it replaces
    (generation 0, from size 0) and the new one, which signs from `first_size`, the tree size
    just after its `ledger.key_rotated` entry (`ledger_index`). Append-only (triggers).
    """

    __tablename__ = "ledger_keys"

    generation: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    label: Mapped[str] = mapped_column(String(64), unique=True)
    public_key: Mapped[str] = mapped_column(String(64))
    first_size: Mapped[int] = mapped_column(BigInteger, unique=True)
    ledger_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class LedgerForkDetection(Base):
    """A checkpoint refused because the stored tree does not extend the last signed one.

    Kept outside the ledger, which cannot record its own fork; append-only (triggers), so that
    a later freeze and the people investigating see every detection (custody.ledger.forks).
    """

    __tablename__ = "ledger_fork_detections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    detected_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # The last signed checkpoint's size (None before the first checkpoint) and the head's.
    checkpoint_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tree_size: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)


class LedgerPublication(Base):
    """Which checkpoints were published to which witness target (file path or URL)."""

    __tablename__ = "ledger_publications"

    target: Mapped[str] = mapped_column(String(500), primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    published_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Approver(Base):
    """A person who approves requests. The server keeps only public keys (invariant 9)."""

    __tablename__ = "approvers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # Ed25519 public key (raw, hex) of a device that signs approval statements over the API.
    device_public_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class ApproverGroup(Base):
    __tablename__ = "approver_groups"

    approver_id: Mapped[str] = mapped_column(ForeignKey("approvers.id"), primary_key=True)
    group: Mapped[str] = mapped_column(String(64), primary_key=True)


class ApproverGroupSettings(Base):
    """Per-group settings: where to tell the group that work is waiting, and what its members
    may do besides approving."""

    __tablename__ = "approver_group_settings"

    group: Mapped[str] = mapped_column(String(64), primary_key=True)
    notify_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # Members may start withdrawals in the approver app (custody approvers grant GROUP maker).
    maker: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class WebauthnCredential(Base):
    """A passkey registered by an approver (public key only)."""

    __tablename__ = "webauthn_credentials"

    id: Mapped[str] = mapped_column(String(512), primary_key=True)  # base64url credential id
    approver_id: Mapped[str] = mapped_column(ForeignKey("approvers.id"), index=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE key
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class EnrolmentInvite(Base):
    """A one-time link to register a passkey; only the token's hash is stored."""

    __tablename__ = "enrolment_invites"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    approver_id: Mapped[str] = mapped_column(ForeignKey("approvers.id"), index=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class WebSession(Base):
    """An approver's signed-in browser session; only the cookie's hash is stored."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    approver_id: Mapped[str] = mapped_column(ForeignKey("approvers.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class WebauthnChallenge(Base):
    """A challenge handed to a browser, usable once, for registration, login or an approval."""

    __tablename__ = "webauthn_challenges"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32))
    approver_id: Mapped[str | None] = mapped_column(ForeignKey("approvers.id"), nullable=True)
    challenge: Mapped[bytes] = mapped_column(LargeBinary)
    data: Mapped[str | None] = mapped_column(Text, nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Approval(Base):
    """One approver's decision on one request, with the evidence an auditor can re-verify."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), index=True)
    approver_id: Mapped[str] = mapped_column(ForeignKey("approvers.id"))
    decision: Mapped[str] = mapped_column(String(16))
    statement: Mapped[bytes] = mapped_column(LargeBinary)  # RFC 8785 bytes that were signed
    method: Mapped[str] = mapped_column(String(16))  # device_key | webauthn
    evidence: Mapped[str] = mapped_column(Text)  # JSON: signature, or WebAuthn assertion parts
    groups: Mapped[str] = mapped_column(Text)  # JSON: the approver's groups when approving
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        UniqueConstraint("request_id", "approver_id"),
        CheckConstraint("decision IN ('approve', 'reject')", name="decision_known"),
    )


class WebhookDelivery(Base):
    """The outbox of webhook calls: one row per status change and client, retried with backoff."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ledger_index: Mapped[int] = mapped_column(BigInteger)
    target: Mapped[str] = mapped_column(String(100))  # client:<id> or group:<name>
    url: Mapped[str] = mapped_column(String(500))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    __table_args__ = (UniqueConstraint("ledger_index", "target"),)


class WebhookCursor(Base):
    """How far the webhook dispatcher has read the ledger (the ledger is the outbox's source)."""

    __tablename__ = "webhook_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    next_index: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


class PolicyApproval(Base):
    """An approver's decision on a proposed policy version (governance)."""

    __tablename__ = "policy_approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("policy_versions.id"), index=True)
    approver_id: Mapped[str] = mapped_column(ForeignKey("approvers.id"))
    decision: Mapped[str] = mapped_column(String(16))
    statement: Mapped[bytes] = mapped_column(LargeBinary)
    evidence: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (UniqueConstraint("version_id", "approver_id"),)


class ConfigurationSeal(Base):
    """One sealed state of the configuration the signer trusts (custody.seals).

    `statement` is the RFC 8785 JSON the installation root key signed in the HSM: the epoch, the
    SHA-256 of `document` and the previous seal's digest. The signer takes no configuration row
    on trust: it rebuilds the document from the rows and signs only while it equals the newest
    seal.
    """

    __tablename__ = "configuration_seals"

    epoch: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    digest: Mapped[str] = mapped_column(String(64))
    document: Mapped[bytes] = mapped_column(LargeBinary)
    statement: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    key_label: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(100))
    sealed_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ConfigurationApproval(Base):
    """A governance approver's device-key decision on a configuration seal.

    Under `governance`, a seal that widens what can be signed (a client, a key, a wallet, an
    approver, a chain...) takes effect for the signer only once the quorum of the configuration
    in effect before it signed its statement (custody.approvals.configuration_approvals).
    """

    __tablename__ = "configuration_approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[int] = mapped_column(ForeignKey("configuration_seals.epoch"), index=True)
    digest: Mapped[str] = mapped_column(String(64))
    approver_id: Mapped[str] = mapped_column(ForeignKey("approvers.id"))
    decision: Mapped[str] = mapped_column(String(16))
    statement: Mapped[bytes] = mapped_column(LargeBinary)  # RFC 8785 bytes that were signed
    signature: Mapped[str] = mapped_column(Text)  # base64 Ed25519 by the device key
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        UniqueConstraint("epoch", "approver_id"),
        CheckConstraint("decision IN ('approve', 'reject')", name="decision_known"),
    )


class Freeze(Base):
    """A stop on signing: of the whole installation (`wallet_id` NULL) or of one wallet.

    While a freeze is active (`lifted_at` NULL) the signer claims no request of its scope and
    releases no signature for one (custody.freezes). Rows are kept when lifted: who froze, why,
    who lifted and why stay readable next to their ledger entries.
    """

    __tablename__ = "freezes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    wallet_id: Mapped[int | None] = mapped_column(
        ForeignKey("wallets.id"), nullable=True, index=True
    )
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100))
    # Who asked: `operator`, `client:<id>`, `breaker:<id>` or `signer`.
    source: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    lifted_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    lifted_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lift_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        CheckConstraint("length(reason) > 0", name="reason_given"),
        CheckConstraint(
            "(lifted_at IS NULL) = (lifted_by IS NULL) AND (lifted_at IS NULL) = "
            "(lift_reason IS NULL)",
            name="lift_complete",
        ),
    )


class Unfreeze(Base):
    """A lift of one freeze waiting for the governance quorum (policies with `governance`)."""

    __tablename__ = "unfreezes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    freeze_id: Mapped[int] = mapped_column(ForeignKey("freezes.id"), index=True)
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime())
    state: Mapped[str] = mapped_column(String(16))
    # JSON [{group, count}]: the governance when it was requested (shown to people); the quorum
    # that lifts is the governance of the policy active when the last approval arrives.
    required_approvals: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    __table_args__ = (
        Index(
            "uq_unfreezes_freeze_id_pending",
            "freeze_id",
            unique=True,
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
        CheckConstraint(
            "state IN ('pending', 'applied', 'rejected', 'superseded')", name="state_known"
        ),
    )


class UnfreezeApproval(Base):
    """An approver's device-key decision on an unfreeze, with the statement it signed."""

    __tablename__ = "unfreeze_approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unfreeze_id: Mapped[int] = mapped_column(ForeignKey("unfreezes.id"), index=True)
    approver_id: Mapped[str] = mapped_column(ForeignKey("approvers.id"))
    decision: Mapped[str] = mapped_column(String(16))
    statement: Mapped[bytes] = mapped_column(LargeBinary)  # RFC 8785 bytes that were signed
    evidence: Mapped[str] = mapped_column(Text)  # JSON: the signature and the key it verified with
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        UniqueConstraint("unfreeze_id", "approver_id"),
        CheckConstraint("decision IN ('approve', 'reject')", name="decision_known"),
    )


class CeremonyProposal(Base):
    """A key ceremony waiting for (or given) the governance quorum: the exact thing it will do
    (custody.approvals.ceremony_approvals). Used once, by the ceremony command it names."""

    __tablename__ = "ceremony_proposals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(Text)  # RFC 8785 JSON of what the ceremony will do
    subject_sha256: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(16))
    # JSON [{group, count}] when proposed (shown to people); the quorum that counts is the
    # governance of the policy active when the ceremony runs.
    required_approvals: Mapped[str] = mapped_column(Text)
    proposed_by: Mapped[str] = mapped_column(String(100))
    proposed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    __table_args__ = (
        CheckConstraint("state IN ('pending', 'rejected', 'used')", name="state_known"),
    )


class CeremonyApproval(Base):
    """An approver's device-key decision on a ceremony proposal, with the statement it signed."""

    __tablename__ = "ceremony_approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("ceremony_proposals.id"), index=True)
    approver_id: Mapped[str] = mapped_column(ForeignKey("approvers.id"))
    decision: Mapped[str] = mapped_column(String(16))
    statement: Mapped[bytes] = mapped_column(LargeBinary)  # RFC 8785 bytes that were signed
    evidence: Mapped[str] = mapped_column(Text)  # JSON: the signature and the key it verified with
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (
        UniqueConstraint("proposal_id", "approver_id"),
        CheckConstraint("decision IN ('approve', 'reject')", name="decision_known"),
    )


class HsmStatus(Base):
    """What each signer process last found of the HSM (custody.hsm.health), for `/readyz`, the
    request views and `custody hsm status`: API processes learn of an HSM outage here without
    calling the HSM themselves, so an HSM that hangs never stalls them.

    Not evidence of anything: a forged row only changes what is shown, never what is signed.
    """

    __tablename__ = "hsm_status"

    # One row per signer process and token it signs with (migration 0019).
    process: Mapped[str] = mapped_column(String(200), primary_key=True)
    token_label: Mapped[str] = mapped_column(String(100), primary_key=True)
    state: Mapped[str] = mapped_column(String(20))  # ok | unavailable | login_held
    detail: Mapped[str] = mapped_column(Text)
    since: Mapped[datetime] = mapped_column(UtcDateTime())
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime())


class HsmLoginHold(Base):
    """Logins to a token stop here after it refused the PIN once (custody.hsm.holds), in every
    process of the installation, until `custody hsm rearm`: a real HSM locks its PIN, or the
    whole partition, after a few failures."""

    __tablename__ = "hsm_login_holds"

    token_label: Mapped[str] = mapped_column(String(100), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    held_by: Mapped[str] = mapped_column(String(200))
    held_at: Mapped[datetime] = mapped_column(UtcDateTime())
