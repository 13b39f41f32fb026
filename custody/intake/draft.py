"""A decoded request: its payload and digest fixed, its facts stated, not yet decided or stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from custody.chains.values import Amount
from custody.policy import RequestFacts
from custody.store.models import Chain, Wallet


@dataclass(frozen=True)
class Draft:
    type: str
    wallet: Wallet
    chain: Chain
    asset: str
    amount: Amount
    destination: str | None
    payload: dict[str, Any]
    """JSON-ready and canonical: what is stored, shown to approvers and rebuilt by the signer."""
    digest: str
    """`0x` + hex of the 32 bytes the HSM will sign."""
    summary: str
    nonce: int | None = None
    """The EVM account nonce the payload uses, if any (one live request per wallet and nonce)."""
    max_fee: int | None = None
    """The most a transaction may pay in fees (gas x max_fee_per_gas), in native base units."""
    contract: str | None = None
    method_selector: str | None = None
    call_flags: frozenset[str] = field(default_factory=frozenset)
    venue: str | None = None
    primary_type: str | None = None
    receiver: str | None = None
    """Who a trade pays what it buys (EIP-55)."""
    receives_asset: str | None = None
    receives_amount: Amount | None = None
    replaces: str | None = None
    """The request whose transaction this one replaces: same wallet, and the same nonce (EVM) or
    at least one of the same coins (Bitcoin)."""
    spends: frozenset[str] = frozenset()
    """Bitcoin coins (`txid:vout`) the transaction spends: one live request per coin."""
    fee: Amount | None = None
    """Fixed by what is signed (a PSBT's inputs minus outputs), in base units of `asset`."""
    fee_rate: Amount | None = None
    """sat/vB over the signed size, with `fee`."""
    destinations: tuple[str, ...] = ()
    """Every address paid when there are several (a Bitcoin batch), `destination` first."""
    executor_wallet_id: int | None = None
    """A Safe wallet's request: the wallet that sends `execTransaction`."""
    executor_nonce: int | None = None
    """...and the account nonce of that transaction (`nonce` is then the Safe's)."""
    details: dict[str, Any] = field(default_factory=dict)
    """Decoded particulars for people and the ledger (method, arguments, typed-data fields)."""

    def facts(self, client: str | None) -> RequestFacts:
        return RequestFacts(
            type=self.facts_type,
            wallet=self.wallet.name,
            chain=self.chain.name,
            asset=self.asset,
            amount=self.amount,
            destination=self.destination,
            client=client,
            contract=self.contract,
            method_selector=self.method_selector,
            call_flags=self.call_flags,
            venue=self.venue,
            primary_type=self.primary_type,
            wallet_address=self.wallet.address,
            receiver=self.receiver,
            receives_asset=self.receives_asset,
            receives_amount=self.receives_amount,
            fee=self.fee,
            fee_rate=self.fee_rate,
            destinations=self.destinations,
        )

    @property
    def facts_type(self) -> str:
        """An ERC-20 transfer is judged as a withdrawal of that asset (limits, allowlists)."""
        return str(self.details.get("judged_as", self.type))
