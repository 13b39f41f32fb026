"""What the signer knows about each payload type: how to re-derive its digest from the stored
payload, and how to sign that digest and verify the result in software before anyone sees it.

New payload types (EIP-712 orders, PSBTs) register a handler here; a payload of an unknown type
fails closed.
"""

from __future__ import annotations

from typing import Any, Protocol

from custody.chains import (
    Digest,
    EvmAddress,
    assemble_signed,
    unsigned_from_payload,
    verify_signed,
)
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


HANDLERS: dict[str, PayloadHandler] = {EIP1559: Eip1559Handler()}


def handler_for(payload: dict[str, Any]) -> PayloadHandler:
    handler = HANDLERS.get(str(payload.get("type")))
    if handler is None:
        raise UnknownPayload(f"no signer for payload type {payload.get('type')!r}")
    return handler
