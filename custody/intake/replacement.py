"""Replacing a stuck transaction: a new request that names the one it replaces.

It passes intake like any request (decoded, judged by the policy, approved as the policy says),
and signs the nonce of the request it replaces: the one way a nonce gets a second signature.
Only the newest signature of a nonce can be replaced (each replacement is the next generation
of its nonce, and the live-nonce index is unique per generation), only while it is not yet in a
block (`signed` or `broadcast`), only by its own client, and only with fees a node accepts as a
replacement: at least a tenth more of both the max fee and the tip. Whichever transaction a
block includes, the broadcaster confirms it and the other is dropped (`failed`, naming the
replacement). The ledger links the two: `replaces` in the new request's `request.created`.
"""

from __future__ import annotations

import json
from dataclasses import replace

from sqlalchemy.orm import Session

from custody.errors import Conflict, NotFound
from custody.intake.draft import Draft
from custody.intake.errors import InvalidBody
from custody.intake.evmfill import EvmFill
from custody.requests import repository as requests
from custody.requests.states import RequestStatus
from custody.store.models import Chain, Request, Wallet

REPLACEABLE = (RequestStatus.SIGNED.value, RequestStatus.BROADCAST.value)


def replaced_request(
    session: Session, *, client_id: str, request_id: str, wallet: Wallet, chain: Chain
) -> Request:
    """The request a replacement names, if it may be replaced now (the caller holds the ledger
    head lock, so nothing moves it meanwhile)."""
    if chain.rpc_url is None:
        raise InvalidBody(
            f"chain {chain.name} has no node: custody does not send its transactions, so it "
            "cannot replace one"
        )
    replaced = session.get(Request, request_id)
    if replaced is None or replaced.client_id != client_id:
        raise NotFound(f"no request {request_id!r} to replace")
    if replaced.wallet_id != wallet.id or replaced.evm_nonce is None:
        raise InvalidBody(
            f"request {request_id} is not a transaction of wallet {wallet.name}: a replacement "
            "signs the same wallet's nonce"
        )
    if replaced.status not in REPLACEABLE:
        raise Conflict(
            f"request {request_id} is {replaced.status}: only a signed or broadcast transaction "
            "not yet in a block can be replaced"
        )
    newer = requests.replacement_of(session, request_id)
    if newer is not None:
        raise Conflict(f"request {request_id} is already replaced by request {newer.id}")
    return replaced


def least_fees(replaced: Request) -> tuple[int, int]:
    """(max fee, tip) a node accepts in place of the replaced transaction: a tenth more each."""
    old_fee, old_tip = _fees(replaced)
    return old_fee + -(-old_fee // 10), old_tip + -(-old_tip // 10)


def bumped(fill: EvmFill, replaced: Request) -> EvmFill:
    """The fill with the replaced request's nonce, and fees it chose raised to the least a node
    accepts (fees the body gave stay as given: `check` refuses them if too low)."""
    least_fee, least_tip = least_fees(replaced)
    tip = fill.max_priority_fee_per_gas
    if tip is not None:
        tip = max(tip, least_tip)
    fee = fill.max_fee_per_gas
    if fee is not None:
        fee = max(fee, least_fee, tip or 0)
    return replace(
        fill, nonce=replaced.evm_nonce, max_fee_per_gas=fee, max_priority_fee_per_gas=tip
    )


def check(draft: Draft, replaced: Request) -> None:
    if draft.nonce != replaced.evm_nonce:
        raise InvalidBody(
            f"a replacement signs the nonce of the request it replaces ({replaced.evm_nonce}), "
            f"not {draft.nonce}"
        )
    least_fee, least_tip = least_fees(replaced)
    fee = int(draft.payload["max_fee_per_gas"])
    tip = int(draft.payload["max_priority_fee_per_gas"])
    if fee < least_fee or tip < least_tip:
        raise InvalidBody(
            f"a replacement must offer at least max_fee_per_gas {least_fee} and "
            f"max_priority_fee_per_gas {least_tip} (a tenth more than request {replaced.id}), "
            f"not {fee} and {tip}"
        )


def _fees(request: Request) -> tuple[int, int]:
    payload = json.loads(request.payload)
    return int(payload["max_fee_per_gas"]), int(payload["max_priority_fee_per_gas"])
