"""`/v1/wallets`: the wallets a trading system can name, with balances from the chain's node."""

from __future__ import annotations

from fastapi import APIRouter

from custody.api.deps import ClientDep, RuntimeDep
from custody.broadcast.balances import balances
from custody.broadcast.schemas import WalletList
from custody.http.problems import problem_responses

router = APIRouter(
    prefix="/v1/wallets",
    tags=["wallets"],
    responses=problem_responses(401, 403, 500, 503),
)


@router.get(
    "",
    summary="Wallets: balance from the node, amounts of live requests, the next nonce",
)
def list_wallets(rt: RuntimeDep, client: ClientDep) -> WalletList:
    return WalletList(items=balances(rt.db, timeout=rt.settings.node_timeout_seconds))
