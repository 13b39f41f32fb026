"""EIP-191 version 0x45 (`personal_sign`) messages: the digest a wallet signs for a text."""

from __future__ import annotations

from eth_account.messages import defunct_hash_message

from custody.chains.values import Digest

PAYLOAD_TYPE = "evm.eip191"


def eip191_digest(message: str) -> Digest:
    """keccak256("\\x19Ethereum Signed Message:\\n" + length + message), the message as UTF-8."""
    return Digest(bytes(defunct_hash_message(text=message)))
