"""Native-asset withdrawals: an EIP-1559 transfer of the chain's own coin."""

from __future__ import annotations

from typing import Any

from custody.chains import Chain as ChainInfo
from custody.chains import Eip1559Fields, build_eip1559, format_units, summary
from custody.intake.decoders import safe
from custody.intake.draft import Draft
from custody.intake.errors import InvalidBody
from custody.intake.evmfill import EvmFill, TxShape, resolve
from custody.intake.lookups import Lookups
from custody.intake.schemas import WithdrawalIntent, parse_withdrawal
from custody.store.models import Chain, SafeWallet, Wallet


def evm_chain_id(chain: Chain) -> int:
    """The chain's EVM id; a wallet on a Bitcoin network takes only `bitcoin_psbt` requests."""
    if chain.evm_chain_id is None:
        raise InvalidBody(
            f"chain {chain.name} is not an EVM chain: its wallets take bitcoin_psbt requests"
        )
    return chain.evm_chain_id


def chain_info(chain: Chain) -> ChainInfo:
    return ChainInfo(
        name=chain.name,
        kind="evm",
        evm_chain_id=evm_chain_id(chain),
        native_asset=chain.native_asset,
        native_decimals=chain.native_decimals,
    )


def decode_withdrawal(lookups: Lookups, data: dict[str, Any], fill: EvmFill | None) -> Draft:
    intent = parse_withdrawal(data)
    wallet = lookups.wallet(intent.wallet)
    chain = lookups.chain(wallet.chain_id)
    chain_id = evm_chain_id(chain)
    if intent.asset != chain.native_asset:
        raise InvalidBody(
            f"asset {intent.asset!r} is not the native asset of chain {chain.name} "
            f"({chain.native_asset}); token transfers are contract calls"
        )
    row = lookups.safe(wallet.id)
    if row is not None:
        return _from_safe(lookups, intent, wallet, chain, row, fill)
    evm = resolve(
        TxShape(wallet, chain, intent.destination, intent.amount.value, b"", intent.evm), fill
    )
    unsigned = build_eip1559(
        Eip1559Fields(
            chain_id=chain_id,
            nonce=evm.nonce,
            to=intent.destination,
            value=intent.amount.value,
            gas=evm.gas,
            max_fee_per_gas=evm.max_fee_per_gas,
            max_priority_fee_per_gas=evm.max_priority_fee_per_gas,
        )
    )
    payload = unsigned.payload
    return Draft(
        type="withdrawal",
        wallet=wallet,
        chain=chain,
        asset=intent.asset,
        amount=intent.amount,
        destination=str(intent.destination),
        payload=payload,
        digest=unsigned.digest.prefixed(),
        summary=summary(payload, chain_info(chain)),
        nonce=evm.nonce,
        max_fee=evm.gas * evm.max_fee_per_gas,
        replaces=intent.replaces,
    )


def _from_safe(  # noqa: PLR0917  (the decoded parts of one body)
    lookups: Lookups,
    intent: WithdrawalIntent,
    wallet: Wallet,
    chain: Chain,
    row: SafeWallet,
    fill: EvmFill | None,
) -> Draft:
    built = safe.build(
        lookups,
        wallet=wallet,
        chain=chain,
        row=row,
        call=safe.SafeCall(intent.destination, intent.amount.value, b"", safe.CALL),
        given=intent.evm,
        fill=fill,
        replaces=intent.replaces,
    )
    request = built.request
    shown = format_units(intent.amount.value, chain.native_decimals)
    return Draft(
        type="withdrawal",
        wallet=wallet,
        chain=chain,
        asset=intent.asset,
        amount=intent.amount,
        destination=str(intent.destination),
        payload=request.as_payload(),
        digest=request.digest.prefixed(),
        summary=f"send {shown} {intent.asset} to {intent.destination}: {built.summary}",
        nonce=request.tx.nonce,
        max_fee=request.max_fee,
        call_flags=built.flags,
        executor_wallet_id=built.executor.id,
        executor_nonce=request.executor.nonce,
    )
