"""What the signer knows about each payload type: how to re-derive its digest from the stored
payload, and how to sign that digest and verify the result in software before anyone sees it.

New payload types (EIP-712 orders, PSBTs) register a handler here; a payload of an unknown type
fails closed.
"""

from __future__ import annotations

from typing import Any, Protocol

from eth_keys.datatypes import Signature

from custody import secp256k1
from custody.chains import (
    Digest,
    EvmAddress,
    assemble_signed,
    unsigned_from_payload,
    verify_signed,
)
from custody.chains.errors import SignatureMismatch
from custody.chains.evm.eip191 import PAYLOAD_TYPE as EIP191_PAYLOAD
from custody.chains.evm.eip191 import eip191_digest
from custody.chains.evm.eip712 import canonical_typed_data
from custody.chains.evm.eip1559 import PAYLOAD_TYPE as EIP1559
from custody.errors import CustodyError
from custody.hsm.signer import Signer
from custody.signing import failpoints


class UnknownPayload(CustodyError):
    status = 500
    title = "Unknown payload type"
    slug = "unknown-payload"


class PayloadHandler(Protocol):
    def digest(self, payload: dict[str, Any]) -> Digest: ...

    def sign(
        self, signer: Signer, key_label: str, address: str, payload: dict[str, Any], digest: Digest
    ) -> dict[str, str]:
        """The result fields, already verified against `address`."""
        ...


class Eip1559Handler:
    def digest(self, payload: dict[str, Any]) -> Digest:
        return unsigned_from_payload(payload).digest

    def sign(
        self, signer: Signer, key_label: str, address: str, payload: dict[str, Any], digest: Digest
    ) -> dict[str, str]:
        unsigned = unsigned_from_payload(payload)
        if unsigned.digest != digest:
            raise CustodyError("payload digest changed between claim and signing", status=500)
        signature = signer.sign_secp256k1(key_label, digest.value)
        failpoints.hit("after-hsm-sign")
        signed = assemble_signed(unsigned, signature.r, signature.s, signature.recovery_id)
        verify_signed(signed, EvmAddress.parse(address))
        return signed.as_result()


EIP712 = "evm.eip712"
EIP191 = EIP191_PAYLOAD
_EIP712_KEYS = {"type", "typed_data", "venue"}


class Eip712Handler:
    """EIP-712 typed data (trade orders): a 65-byte r || s || v signature, v = 27 + y-parity."""

    def digest(self, payload: dict[str, Any]) -> Digest:
        if set(payload) != _EIP712_KEYS or payload["type"] != EIP712:
            raise CustodyError(f"typed-data payload must have exactly {sorted(_EIP712_KEYS)}")
        typed, message = canonical_typed_data(payload["typed_data"])
        if typed != payload["typed_data"]:
            # Approvers saw the stored text: a payload we would spell differently is not ours.
            raise CustodyError("stored typed data is not in canonical form", status=500)
        return message.digest

    def sign(
        self, signer: Signer, key_label: str, address: str, payload: dict[str, Any], digest: Digest
    ) -> dict[str, str]:
        if self.digest(payload) != digest:
            raise CustodyError("payload digest changed between claim and signing", status=500)
        return rsv_signature(signer, key_label, address, digest)


def rsv_signature(signer: Signer, key_label: str, address: str, digest: Digest) -> dict[str, str]:
    """Sign a bare digest (typed data, messages) as `0x` r || s || v, v = 27 + y-parity, and
    verify it recovers to `address` before anyone sees it."""
    signature = signer.sign_secp256k1(key_label, digest.value)
    failpoints.hit("after-hsm-sign")
    r, s, v = signature.r, signature.s, 27 + signature.recovery_id
    verify_typed_signature(digest, r, s, v, EvmAddress.parse(address))
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])
    return {"signature": "0x" + raw.hex()}


def verify_typed_signature(digest: Digest, r: int, s: int, v: int, expected: EvmAddress) -> None:
    """Recover with eth-keys (not the code that assembled r, s, v) and compare addresses."""
    if not (secp256k1.in_range(r) and secp256k1.is_low_s(s) and v in (27, 28)):
        # High s is valid ECDSA but refused by most venues' contracts (EIP-2, OpenZeppelin).
        raise SignatureMismatch("typed-data signature is out of range or not low-s")
    try:
        recovered = Signature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(digest.value)
    except Exception as error:  # an unrecoverable signature is as bad as a wrong one
        raise SignatureMismatch("signer of the typed data cannot be recovered") from error
    if EvmAddress.parse(recovered.to_checksum_address()) != expected:
        raise SignatureMismatch(
            f"typed data is signed by {recovered.to_checksum_address()}, expected {expected}"
        )


class Eip191Handler:
    """EIP-191 personal messages: r || s || v like typed data, over the prefixed-message hash."""

    def digest(self, payload: dict[str, Any]) -> Digest:
        message = payload.get("message")
        if (
            set(payload) != {"type", "message"}
            or payload["type"] != EIP191
            or not isinstance(message, str)
        ):
            raise CustodyError("message payload must be exactly {type, message}", status=500)
        return eip191_digest(message)

    def sign(
        self, signer: Signer, key_label: str, address: str, payload: dict[str, Any], digest: Digest
    ) -> dict[str, str]:
        if self.digest(payload) != digest:
            raise CustodyError("payload digest changed between claim and signing", status=500)
        return rsv_signature(signer, key_label, address, digest)


HANDLERS: dict[str, PayloadHandler] = {
    EIP1559: Eip1559Handler(),
    EIP712: Eip712Handler(),
    EIP191: Eip191Handler(),
}


def handler_for(payload: dict[str, Any]) -> PayloadHandler:
    handler = HANDLERS.get(str(payload.get("type")))
    if handler is None:
        raise UnknownPayload(f"no signer for payload type {payload.get('type')!r}")
    return handler
