"""EIP-191 version 0x45 (`personal_sign`) messages: the digest a wallet signs for a text."""

from __future__ import annotations

from custody.chains.values import Digest

PAYLOAD_TYPE = "evm.eip191"


def eip191_digest(message: str) -> Digest:
    """keccak256("\\x19Ethereum Signed Message:\\n" + length + message), the message as UTF-8."""
    # eth-account imports eth-keyfile and py_ecc (0.5 s); commands that never sign skip it.
    from eth_account.messages import defunct_hash_message

    return Digest(bytes(defunct_hash_message(text=message)))
