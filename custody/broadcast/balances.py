"""What a wallet holds and owes: its balance on the node, what its live requests will move, and
the nonce its next request gets (`custody wallets balance`, `GET /v1/wallets`)."""

from __future__ import annotations

from custody.broadcast import repository
from custody.broadcast.schemas import WalletBalance
from custody.chains.evm.rpc import EvmNode
from custody.chains.evm.safe_node import safe_nonce
from custody.chains.values import EvmAddress
from custody.errors import CustodyError
from custody.intake.completion import next_nonce
from custody.store.database import Database
from custody.store.models import Chain, Wallet
from custody.wallets import repository as wallets


def balances(db: Database, *, timeout: float, name: str | None = None) -> list[WalletBalance]:
    """Every wallet's (or the one named), asking each connected chain's node outside any
    database transaction; a node that does not answer leaves `balance` null and says why."""
    with db.read() as session:
        rows = [(w, c) for w, c, _ in wallets.wallets(session) if name in (None, w.name)]
        if name is not None and not rows:
            wallets.wallet_by_name(session, name)  # raises: unknown wallet
        pending = {w.id: _sums(repository.pending_amounts(session, w.id)) for w, _ in rows}
        multisig = wallets.safe_wallet_ids(session)
    answers = [
        _ask_node(wallet, chain, timeout, is_safe=wallet.id in multisig) for wallet, chain in rows
    ]
    result = []
    for (wallet, chain), (balance, counted, problem) in zip(rows, answers, strict=True):
        nonce = None
        if counted is not None:
            with db.read() as session:
                nonce = next_nonce(session, wallet.id, counted)
        result.append(
            WalletBalance(
                name=wallet.name,
                chain=chain.name,
                address=wallet.address,
                asset=chain.native_asset,
                connected=chain.rpc_url is not None,
                balance=None if balance is None else str(balance),
                pending=pending[wallet.id],
                next_nonce=nonce,
                node_error=problem,
            )
        )
    return result


def _ask_node(
    wallet: Wallet, chain: Chain, timeout: float, *, is_safe: bool
) -> tuple[int | None, int | None, str | None]:
    """Balance and the nonce count the next request starts from: a Safe's own nonce (read from
    the contract) for a Safe wallet, the account's pending count otherwise."""
    if chain.rpc_url is None or chain.evm_chain_id is None:
        return None, None, None
    with EvmNode(
        chain.rpc_url, chain_name=chain.name, chain_id=chain.evm_chain_id, timeout=timeout
    ) as node:
        try:
            if is_safe:
                count = safe_nonce(node, EvmAddress.parse(wallet.address))
            else:
                count = node.pending_nonce(wallet.address)
            return node.balance(wallet.address), count, None
        except CustodyError as exc:
            return None, None, exc.message


def _sums(rows: list[tuple[str, str]]) -> dict[str, str]:
    totals: dict[str, int] = {}
    for asset, amount in rows:
        totals[asset] = totals.get(asset, 0) + int(amount)
    return {asset: str(total) for asset, total in sorted(totals.items())}
