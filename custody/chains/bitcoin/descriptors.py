"""A Bitcoin wallet's script as a BIP-380 output descriptor: `wpkh(K)` or
`wsh(sortedmulti(M,K1,...,Kn))`, with compressed public keys and the descriptor checksum."""

from __future__ import annotations

from dataclasses import dataclass

import coincurve
from embit.descriptor import Descriptor
from embit.descriptor.checksum import add_checksum
from embit.script import Script

from custody.chains.bitcoin.networks import network_for
from custody.chains.errors import InvalidPayload

MAX_OWNERS = 15  # the most keys standard P2WSH multisig relays with


@dataclass(frozen=True)
class WalletScript:
    descriptor: str
    """With its `#checksum`: what a watch-only wallet imports."""
    threshold: int
    owners: tuple[bytes, ...]
    """33-byte compressed public keys in the order the descriptor names them."""
    script_pubkey: bytes
    witness_script: bytes | None
    """P2WSH only: the multisig script the inputs reveal."""

    @property
    def is_multisig(self) -> bool:
        return self.witness_script is not None

    def address(self, chain: str) -> str:
        parsed = Descriptor.from_string(self.descriptor.split("#")[0])
        return str(parsed.address(network_for(chain)))


def compressed(public_key: bytes) -> bytes:
    """Any SEC1 secp256k1 public key, as the 33 bytes segwit scripts take."""
    try:
        return bytes(coincurve.PublicKey(public_key).format(compressed=True))
    except ValueError as exc:
        raise InvalidPayload(f"not a secp256k1 public key: {exc}") from None


def build_descriptor(owners: list[bytes], threshold: int | None) -> str:
    """`wpkh` for one key and no threshold, `wsh(sortedmulti)` for M of N; with checksum."""
    keys = [compressed(k).hex() for k in owners]
    if len(set(keys)) != len(keys):
        raise InvalidPayload("a multisig wallet's owner keys must all differ")
    if threshold is None:
        if len(keys) != 1:
            raise InvalidPayload("a single-key wallet has exactly one key")
        return str(add_checksum(f"wpkh({keys[0]})"))
    if not 1 <= len(keys) <= MAX_OWNERS:
        raise InvalidPayload(f"a multisig wallet has 1 to {MAX_OWNERS} owner keys")
    if not 1 <= threshold <= len(keys):
        raise InvalidPayload(f"threshold must be between 1 and {len(keys)}, got {threshold}")
    return str(add_checksum(f"wsh(sortedmulti({threshold},{','.join(keys)}))"))


def wallet_script(descriptor: str) -> WalletScript:
    """Parse a stored descriptor back (checksum checked) into what PSBT inputs must spend."""
    body, _, checksum = descriptor.partition("#")
    if not checksum or add_checksum(body) != descriptor:
        raise InvalidPayload("wallet descriptor's checksum does not match")
    parsed = Descriptor.from_string(body)
    keys = tuple(bytes(k.sec()) for k in parsed.keys)
    script_pubkey = bytes(parsed.script_pubkey().data)
    if body.startswith("wpkh("):
        return WalletScript(descriptor, 1, keys, script_pubkey, None)
    if body.startswith("wsh(sortedmulti("):
        witness: Script = parsed.witness_script()
        threshold = int(body[len("wsh(sortedmulti(") :].split(",")[0])
        return WalletScript(descriptor, threshold, keys, script_pubkey, bytes(witness.data))
    raise InvalidPayload("only wpkh(K) and wsh(sortedmulti(M,...)) wallets are supported")
