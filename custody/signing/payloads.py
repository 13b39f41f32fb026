"""What the signer knows about each payload type: how to re-derive its digest from the stored
payload, and how to sign that digest and verify the result in software before anyone sees it.

New payload types (EIP-712 orders, PSBTs) register a handler here; a payload of an unknown type
fails closed.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
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
from custody.chains.bitcoin import WalletScript, wallet_script
from custody.chains.bitcoin import psbt as bitcoin_psbt
from custody.chains.errors import SignatureMismatch
from custody.chains.evm import safe, safe_payload
from custody.chains.evm.eip191 import PAYLOAD_TYPE as EIP191_PAYLOAD
from custody.chains.evm.eip191 import eip191_digest
from custody.chains.evm.eip712 import canonical_typed_data
from custody.chains.evm.eip1559 import PAYLOAD_TYPE as EIP1559
from custody.errors import CustodyError
from custody.hsm.errors import HsmError
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


class Tokens(Protocol):
    """The installation's tokens as one signing attempt finds them (the worker follows each)."""

    def signer(self, token_label: str) -> Signer:
        """The token a key row names (`keys.token`); raises HsmError when it cannot sign now."""
        ...

    def failed(self, token_label: str, error: HsmError) -> None:
        """A retryable HSM error on the token: record it and return to go on without the
        token, or raise to stop signing (a definite answer, or a single-token signer)."""
        ...


class KeyGone(CustodyError):
    """A token found healthy says it does not hold the key: a definite answer (Tokens.failed)."""

    status = 500
    title = "Key not on its token"
    slug = "key-gone"


class OwnersWaiting(CustodyError):
    """Fewer owner keys are reachable than the PSBT needs from custody: the request waits,
    `approved`, for their tokens (nothing made in this attempt is released)."""

    status = 503
    title = "Owner keys unavailable"
    slug = "owner-keys-unavailable"


@dataclass(frozen=True)
class HeldKey:
    public_key: bytes
    label: str
    token: str
    """`keys.token` of the key: the token it signs on."""


class BitcoinPsbtHandler:
    """PSBTs: the PSBT is parsed again against the wallet's descriptor and every BIP-143 sighash
    computed here; each owner key custody holds signs every input on its own token (until M
    signatures are in), each signature is checked in software against the descriptor's key,
    then the transaction is finalized once M are in. A token that fails is skipped while the
    keys on the others still give every input what all held keys would."""

    def digest(self, payload: dict[str, Any]) -> Digest:
        return Digest(self._decoded(payload)[0].digest)

    def sign(
        self, signer: Signer, key_label: str, address: str, payload: dict[str, Any], digest: Digest
    ) -> dict[str, str]:
        return self.sign_on(_OneToken(signer), (), address, payload, digest)

    def sign_on(
        self,
        tokens: Tokens,
        owner_tokens: tuple[str | None, ...],
        address: str,
        payload: dict[str, Any],
        digest: Digest,
    ) -> dict[str, str]:
        """`owner_tokens`: the token of each owner key in the payload's order (None for an
        external cosigner's); empty when every held key is on the one token `tokens` gives."""
        decoded, script = self._decoded(payload)
        if Digest(decoded.digest) != digest:
            raise CustodyError("payload digest changed between claim and signing", status=500)
        if script.address(payload["chain"]) != address:
            raise SignatureMismatch("the payload's descriptor is not the wallet's")
        held = held_owner_keys(script.owners, payload["owners"], owner_tokens)
        away: dict[str, str] = {}
        for key in held:
            if key.token in away or not _inputs_wanting(decoded, script, key.public_key):
                continue
            try:
                signer = tokens.signer(key.token)
                _sign_inputs(signer, decoded, script, key)
            except HsmError as exc:
                if not exc.retryable:
                    raise
                tokens.failed(key.token, exc)
                away[key.token] = exc.message
        if away and short_of_signatures(decoded, script, held, away):
            reasons = "; ".join(f"{token or 'main token'}: {why}" for token, why in away.items())
            raise OwnersWaiting(f"waiting for the tokens of the owner keys ({reasons})")
        finalized = bitcoin_psbt.finalize(decoded, script)
        result = {"psbt": str(decoded.psbt.to_base64())}
        if finalized is not None:
            result["raw_transaction"], result["txid"] = finalized
        return result

    @staticmethod
    def _decoded(
        payload: dict[str, Any],
    ) -> tuple[bitcoin_psbt.DecodedPsbt, WalletScript]:
        if set(payload) != _BITCOIN_KEYS or payload["type"] != BITCOIN_PSBT:
            raise CustodyError(
                f"PSBT payload must have exactly {sorted(_BITCOIN_KEYS)}", status=500
            )
        script = wallet_script(payload["descriptor"])
        decoded = bitcoin_psbt.decode_psbt(payload["psbt"], script, payload["chain"])
        if decoded.canonical != payload["psbt"] or len(payload["owners"]) != len(script.owners):
            raise CustodyError("stored PSBT payload is not in canonical form", status=500)
        return decoded, script


class _OneToken:
    """Every held key on one signer; its failures stop signing (the caller waits for it)."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    def signer(self, token_label: str) -> Signer:
        return self._signer

    def failed(self, token_label: str, error: HsmError) -> None:
        raise error


def _inputs_wanting(
    decoded: bitcoin_psbt.DecodedPsbt, script: WalletScript, public_key: bytes
) -> list[int]:
    """The inputs this key has not signed that still lack signatures."""
    wanting = []
    for index in range(len(decoded.sighashes)):
        present = bitcoin_psbt.signatures(decoded, index)
        if public_key not in present and len(present) < script.threshold:
            wanting.append(index)
    return wanting


def _sign_inputs(
    signer: Signer, decoded: bitcoin_psbt.DecodedPsbt, script: WalletScript, key: HeldKey
) -> None:
    for index in _inputs_wanting(decoded, script, key.public_key):
        signature = signer.sign_secp256k1(key.label, decoded.sighashes[index])
        failpoints.hit("after-hsm-sign")
        der = bitcoin_psbt.der_signature(signature.r, signature.s)
        bitcoin_psbt.add_signature(decoded, index, key.public_key, der)


def short_of_signatures(
    decoded: bitcoin_psbt.DecodedPsbt,
    script: WalletScript,
    held: list[HeldKey],
    away: Collection[str],
) -> bool:
    """Whether, without the keys on the `away` tokens, some input gets fewer signatures than
    all held keys would give it (up to M): then the request waits for those tokens rather than
    release a PSBT that is less signed than custody can make it."""
    for index in range(len(decoded.sighashes)):
        present = set(bitcoin_psbt.signatures(decoded, index))
        missing = [key for key in held if key.public_key not in present]
        reachable = [key for key in missing if key.token not in away]
        everything = min(script.threshold, len(present) + len(missing))
        if min(script.threshold, len(present) + len(reachable)) < everything:
            return True
    return False


def owners_away(
    payload: dict[str, Any], owner_tokens: tuple[str | None, ...], away: Collection[str]
) -> bool:
    """Whether a stored PSBT payload must wait for the `away` tokens (see short_of_signatures);
    the claim asks before re-checking anything, so a wait adds nothing to the ledger."""
    decoded, script = BitcoinPsbtHandler._decoded(payload)
    held = held_owner_keys(script.owners, payload["owners"], owner_tokens)
    return short_of_signatures(decoded, script, held, away)


def held_owner_keys(
    owners: tuple[bytes, ...], labels: list[str | None], tokens: tuple[str | None, ...]
) -> list[HeldKey]:
    """The owner keys custody holds, with their labels and tokens, in descriptor order: the one
    place that chooses which keys sign. `tokens` empty: every held key on one token."""
    tokens = tokens or tuple("" for _ in owners)
    return [
        HeldKey(key, label, token or "")
        for key, label, token in zip(owners, labels, tokens, strict=True)
        if label is not None
    ]


BITCOIN_PSBT = bitcoin_psbt.PAYLOAD_TYPE
_BITCOIN_KEYS = {"type", "chain", "descriptor", "owners", "psbt"}
HANDLERS[BITCOIN_PSBT] = BitcoinPsbtHandler()


class SafeTxHandler:
    """Safe wallets: the SafeTx is parsed again from the stored payload and its `safeTxHash`
    computed here; owner keys sign it each on its own token, in address order, until M
    signatures are in (a token that fails is skipped while M others remain); every signature
    must recover to its owner's address in software; then the executor key signs the
    `execTransaction` that carries them, checked like any transaction."""

    def digest(self, payload: dict[str, Any]) -> Digest:
        return safe_payload.from_payload(payload).digest

    def sign(
        self, signer: Signer, key_label: str, address: str, payload: dict[str, Any], digest: Digest
    ) -> dict[str, str]:
        request = safe_payload.from_payload(payload)
        tokens = tuple("" for _ in request.owners)
        return self.sign_on(_OneToken(signer), tokens, "", address, payload, digest)

    def sign_on(  # noqa: PLR0917  (BitcoinPsbtHandler.sign_on's, and the executor's token)
        self,
        tokens: Tokens,
        owner_tokens: tuple[str | None, ...],
        executor_token: str,
        address: str,
        payload: dict[str, Any],
        digest: Digest,
    ) -> dict[str, str]:
        """`owner_tokens`: the token of each owner in the payload's order (None: not held)."""
        request = safe_payload.from_payload(payload)
        if request.digest != digest:
            raise CustodyError("payload digest changed between claim and signing", status=500)
        if str(request.safe) != address:
            raise SignatureMismatch("the payload's Safe is not the wallet's")
        signatures = _owner_signatures(tokens, request, owner_tokens, digest)
        packed = safe.signature_bytes(signatures)
        unsigned = request.executor_tx(packed)
        try:
            signature = tokens.signer(executor_token).sign_secp256k1(
                request.executor.key, unsigned.digest.value
            )
        except HsmError as exc:
            if not exc.retryable:
                raise
            tokens.failed(executor_token, exc)
            raise OwnersWaiting(f"waiting for the executor's token: {exc.message}") from None
        failpoints.hit("after-hsm-sign")
        signed = assemble_signed(unsigned, signature.r, signature.s, signature.recovery_id)
        verify_signed(signed, request.executor.address)
        return {
            "safe_tx_hash": digest.prefixed(),
            "signatures": "0x" + packed.hex(),
            **signed.as_result(),
        }


def _owner_signatures(
    tokens: Tokens,
    request: safe_payload.SafeRequest,
    owner_tokens: tuple[str | None, ...],
    digest: Digest,
) -> list[tuple[EvmAddress, int, int, int]]:
    """M owner signatures over the safeTxHash, each checked against its owner; raises
    OwnersWaiting while failing tokens may still make up M, a CustodyError when they cannot."""
    signatures: list[tuple[EvmAddress, int, int, int]] = []
    away: dict[str, str] = {}  # tokens failing for now: their keys may sign later
    waiting = 0  # owners on those tokens
    gone: list[str] = []  # keys a healthy token says it does not hold: a definite answer
    for owner, token in zip(request.owners, owner_tokens, strict=True):
        if len(signatures) == request.threshold:
            break
        if owner.key is None or token is None:
            continue
        if token in away:
            waiting += 1
            continue
        try:
            signature = tokens.signer(token).sign_secp256k1(owner.key, digest.value)
        except HsmError as exc:
            if not exc.retryable:
                raise
            try:
                tokens.failed(token, exc)
            except KeyGone as definite:
                gone.append(f"{owner.key}: {definite.message}")
                continue
            away[token] = exc.message
            waiting += 1
            continue
        failpoints.hit("after-hsm-sign")
        v = 27 + signature.recovery_id
        verify_typed_signature(digest, signature.r, signature.s, v, owner.address)
        signatures.append((owner.address, signature.r, signature.s, v))
    if len(signatures) < request.threshold:
        made = f"{len(signatures)} of the {request.threshold} owner signatures the Safe needs"
        if len(signatures) + waiting < request.threshold:
            # nothing to wait for: the keys that could still make up M are not there
            raise CustodyError(
                f"only {made} can be made: {'; '.join(gone) or 'too few owner keys held'}"
            )
        reasons = "; ".join(f"{token or 'main token'}: {why}" for token, why in away.items())
        raise OwnersWaiting(f"{made} could be made; waiting for the owner keys' tokens ({reasons})")
    return signatures


def safe_owners_away(
    payload: dict[str, Any],
    owner_tokens: tuple[str | None, ...],
    executor_token: str,
    away: Collection[str],
) -> bool:
    """Whether a Safe request must wait: fewer than M owner keys on tokens that work, or the
    executor's token failing."""
    request = safe_payload.from_payload(payload)
    reachable = sum(
        1
        for owner, token in zip(request.owners, owner_tokens, strict=True)
        if owner.key is not None and token is not None and token not in away
    )
    return reachable < request.threshold or executor_token in away


SAFE_TX = safe_payload.PAYLOAD_TYPE
HANDLERS[SAFE_TX] = SafeTxHandler()
