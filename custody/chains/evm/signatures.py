"""Turn an HSM's (r, s) into a broadcastable transaction, and verify it before anyone sees it.

PKCS#11 ECDSA returns bare (r, s): no recovery id and no low-s guarantee. Ethereum needs both
(EIP-2 rejects high s), so this module supplies the recovery id and the normalisation, then checks
the result with code that did not produce it.
"""

from __future__ import annotations

from dataclasses import dataclass

from coincurve import PublicKey
from eth_utils.crypto import keccak
from hexbytes import HexBytes

from custody import secp256k1
from custody.chains.errors import SignatureMismatch
from custody.chains.evm.addresses import address_from_public_key
from custody.chains.evm.eip1559 import TX_TYPE, UnsignedEvmTx
from custody.chains.values import Digest, EvmAddress

# eth-account (with eth-keyfile and py_ecc, 0.5 s to import) is imported by the functions that
# use it, so that importing custody.chains (every CLI command does) stays cheap.


@dataclass(frozen=True, slots=True)
class SignedEvmTx:
    raw: bytes
    tx_hash: Digest
    # The approved signing digest the raw transaction must decode to.
    digest: Digest

    @property
    def raw_hex(self) -> str:
        return "0x" + self.raw.hex()

    def as_result(self) -> dict[str, str]:
        """The `result` object of a signed request in the HTTP API."""
        return {"raw_transaction": self.raw_hex, "tx_hash": self.tx_hash.prefixed()}


def _check_scalars(r: int, s: int) -> None:
    for name, scalar in (("r", r), ("s", s)):
        if isinstance(scalar, bool) or not isinstance(scalar, int):
            raise SignatureMismatch(f"signature {name} must be an integer")
        if not secp256k1.in_range(scalar):
            raise SignatureMismatch(f"signature {name} is out of range")


def recovery_id_for(digest: Digest, r: int, s: int, signer: EvmAddress) -> int:
    """Find the y-parity under which (r, s) over ``digest`` recovers to ``signer``."""
    _check_scalars(r, s)
    compact = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    for recovery_id in (0, 1):
        try:
            point = PublicKey.from_signature_and_message(
                compact + bytes([recovery_id]), digest.value, hasher=None
            )
        except ValueError:
            continue
        if address_from_public_key(point.format(compressed=False)) == signer:
            return recovery_id
    raise SignatureMismatch(f"signature does not recover to {signer} under either parity")


def assemble_signed(unsigned: UnsignedEvmTx, r: int, s: int, recovery_id: int) -> SignedEvmTx:
    """Encode the signed type-2 transaction (v is the y-parity) with s normalised to low-s.

    Checks that the bytes decode back to the approved digest; the sender is checked by
    `verify_signed`, which needs the wallet's address.
    """
    _check_scalars(r, s)
    if recovery_id not in (0, 1) or isinstance(recovery_id, bool):
        # 2 and 3 mean r overflowed n: astronomically rare and not expressible as a y-parity.
        raise SignatureMismatch(f"recovery id must be 0 or 1, got {recovery_id!r}")
    from eth_account.typed_transactions.typed_transaction import TypedTransaction

    r, s, y_parity = secp256k1.to_low_s(r, s, recovery_id)
    signed_dict = unsigned.fields.as_eth_account_dict() | {"v": y_parity, "r": r, "s": s}
    raw = TypedTransaction.from_dict(signed_dict).encode()
    signed = SignedEvmTx(raw=raw, tx_hash=Digest(keccak(raw)), digest=unsigned.digest)
    _decode_and_check_digest(signed)
    return signed


def _decode_and_check_digest(signed: SignedEvmTx) -> tuple[int, int, int]:
    from eth_account.typed_transactions.typed_transaction import TypedTransaction

    if not signed.raw or signed.raw[0] != TX_TYPE:
        raise SignatureMismatch("signed transaction is not an EIP-1559 (type 2) transaction")
    try:
        decoded = TypedTransaction.from_bytes(HexBytes(signed.raw))
    except Exception as error:  # any decoding failure of our own output is a server fault
        raise SignatureMismatch("signed transaction does not decode") from error
    if decoded.hash() != signed.digest.value:
        raise SignatureMismatch("signed transaction is not the approved payload")
    return decoded.vrs()


def verify_signed(signed: SignedEvmTx, expected_from: EvmAddress) -> None:
    """Fail closed unless ``signed`` is the approved payload, low-s and from ``expected_from``."""
    from eth_account import Account

    _, _, s = _decode_and_check_digest(signed)
    if not secp256k1.is_low_s(s):
        raise SignatureMismatch("signature has a high s value (EIP-2); nodes would reject it")
    if keccak(signed.raw) != signed.tx_hash.value:
        raise SignatureMismatch("transaction hash does not match the signed bytes")
    try:
        sender = Account.recover_transaction(signed.raw)
    except Exception as error:  # an unrecoverable signature is as bad as a wrong one
        raise SignatureMismatch("signer of the transaction cannot be recovered") from error
    if EvmAddress.parse(sender) != expected_from:
        raise SignatureMismatch(f"transaction is signed by {sender}, expected {expected_from}")
