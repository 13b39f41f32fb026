"""One line an approver can read and check against what they expect to be sent."""

from __future__ import annotations

from custody.chains.errors import InvalidPayload
from custody.chains.evm.eip1559 import fields_from_payload
from custody.chains.registry import Chain, builtin_chain_for


def format_units(amount: int, decimals: int) -> str:
    """Exact decimal rendering (no floats): 1500000000000000000, 18 -> "1.5"."""
    whole, fraction = divmod(amount, 10**decimals)
    if fraction == 0:
        return str(whole)
    return f"{whole}.{str(fraction).zfill(decimals).rstrip('0')}"


def summary(payload: object, chain: Chain | None = None) -> str:
    """E.g. ``send 1.5 ETH (1500000000000000000 wei) to 0xAbC… on chain 1, nonce 7, …``.

    The destination is shown in full: truncated addresses are what address-poisoning attacks
    rely on. Without a known chain the amount is shown in wei only rather than under a guessed
    symbol.
    """
    fields = fields_from_payload(payload)
    if chain is None:
        chain = builtin_chain_for(fields.chain_id)
    elif chain.evm_chain_id != fields.chain_id:
        raise InvalidPayload(f"payload is for chain {fields.chain_id}, not {chain.name}")
    max_fee = fields.gas * fields.max_fee_per_gas
    if chain is None:
        amount = f"{fields.value} wei"
        fee = f"{max_fee} wei"
    else:
        symbol, decimals = chain.native_asset, chain.native_decimals
        amount = f"{format_units(fields.value, decimals)} {symbol} ({fields.value} wei)"
        fee = f"{format_units(max_fee, decimals)} {symbol}"
    line = f"send {amount} to {fields.to} on chain {fields.chain_id}, nonce {fields.nonce}"
    line += f", max fee {fee}"
    if fields.data:
        line += f", with {len(fields.data)} bytes of call data"
    return line
