"""Requests from a Safe wallet: the usual withdrawal and contract-call bodies, made into the
SafeTx that M owners sign and the `execTransaction` the executor wallet sends.

The body's `evm.nonce` pins the Safe's nonce; its gas and fee fields are the executor
transaction's. On a connected chain custody fills the rest: the Safe's next nonce (read from the
contract, then the next one no live request holds), the executor's account nonce, and gas and
fees from the node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from custody.chains import EvmAddress, address_from_public_key
from custody.chains.evm import safe
from custody.chains.evm.safe_payload import Executor, Owner, SafeRequest
from custody.intake.errors import InvalidBody
from custody.intake.evmfill import EvmFill, Incomplete, SafeShape, TxShape, resolve
from custody.intake.lookups import Lookups
from custody.policy.calls import CallFlag
from custody.store.models import Chain, SafeWallet, Wallet

CALL, DELEGATECALL = safe.CALL, safe.DELEGATECALL


@dataclass(frozen=True)
class SafeCall:
    """What a body asks the Safe to do."""

    to: EvmAddress
    value: int
    data: bytes
    operation: int


@dataclass(frozen=True)
class SafeBuilt:
    request: SafeRequest
    executor: Wallet
    flags: frozenset[str]
    summary: str


def build(
    lookups: Lookups,
    *,
    wallet: Wallet,
    chain: Chain,
    row: SafeWallet,
    call: SafeCall,
    given: EvmFill,
    fill: EvmFill | None,
    replaces: str | None,
) -> SafeBuilt:
    if replaces is not None:
        raise InvalidBody(
            f"wallet {wallet.name} is a Safe: replacing a stuck execTransaction is not "
            "supported yet (cancel the request instead)"
        )
    assert chain.evm_chain_id is not None
    executor = lookups.wallet_by_id(row.executor_wallet_id)
    executor_key = lookups.key_by_id(executor.key_id)
    owners = sorted(
        (_owner(lookups, label) for label in json.loads(row.owners)),
        key=lambda owner: bytes(owner.address),
    )
    shape = TxShape(
        wallet,
        chain,
        call.to,
        call.value,
        call.data,
        given,
        safe=SafeShape(executor=executor, threshold=row.threshold),
    )
    if chain.rpc_url is None:
        raise InvalidBody(
            f"wallet {wallet.name} is a Safe: its chain {chain.name} needs a node "
            "(custody chains set --rpc-url) for the executor's transaction"
        )
    if fill is None or fill.executor_nonce is None:
        raise Incomplete(shape)
    evm = resolve(shape, fill)
    request = SafeRequest(
        chain_id=chain.evm_chain_id,
        safe=EvmAddress.parse(wallet.address),
        tx=safe.SafeTx(
            to=call.to, value=call.value, data=call.data, operation=call.operation, nonce=evm.nonce
        ),
        threshold=row.threshold,
        owners=tuple(owners),
        executor=Executor(
            address=EvmAddress.parse(executor.address),
            key=executor_key.label,
            nonce=fill.executor_nonce,
            gas=evm.gas,
            max_fee_per_gas=evm.max_fee_per_gas,
            max_priority_fee_per_gas=evm.max_priority_fee_per_gas,
        ),
    )
    flags: set[str] = set()
    if call.operation == safe.DELEGATECALL:
        flags.add(CallFlag.DELEGATECALL.value)
    if call.to == request.safe:
        # owner, threshold, module and guard changes are calls of the Safe to itself
        flags.add(CallFlag.SELF_CALL.value)
    summary = (
        f"Safe {wallet.name} ({row.threshold} of {len(owners)}) nonce {evm.nonce}; executor "
        f"{executor.name} pays up to {request.max_fee} wei in fees"
    )
    return SafeBuilt(request, executor, frozenset(flags), summary)


def _owner(lookups: Lookups, label: str) -> Owner:
    key = lookups.key(label)
    return Owner(address_from_public_key(bytes.fromhex(key.public_key)), key.label)
