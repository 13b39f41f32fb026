"""PSBTs (BIP-174 version 0, BIP-370 version 2) decoded strictly against one wallet's script,
signed and finalised.

Strict means: every input spends the wallet's own script and carries its `witness_utxo` (and,
for P2WSH, the wallet's `witness_script`); nothing custody cannot vouch for (unknown fields,
redeem scripts, finalised inputs, a sighash type other than ALL, signatures by keys that are
not the wallet's, outputs without an address) is accepted. Amounts and fees come from the
witness UTXOs, which BIP-143 sighashes commit to, so a lie about them yields signatures that
do not verify on chain.
"""

from __future__ import annotations

import binascii
import hashlib
from dataclasses import dataclass
from io import BytesIO

import coincurve
from embit.ec import PublicKey
from embit.psbt import PSBT, read_string
from embit.script import Script, Witness
from embit.transaction import Transaction

from custody.chains.bitcoin.descriptors import WalletScript
from custody.chains.bitcoin.networks import fee_cap, network_for
from custody.chains.errors import InvalidPayload, SignatureMismatch
from custody.secp256k1 import is_low_s

PAYLOAD_TYPE = "bitcoin.psbt"
SIGHASH_ALL = 1
MAX_MONEY = 21_000_000 * 100_000_000
MAX_PSBT_BYTES = 400_000  # a standard transaction is at most 400,000 weight units
DIGEST_TAG = b"custody/bitcoin-psbt/v1"
# Witness bytes per input when signed: count, DER signature + hash type (at most 73), key or
# script; used to estimate the fee rate before any signature exists.
_SIGNATURE = 1 + 73
_TX_MODIFIABLE = b"\x06"  # BIP-370 PSBT_GLOBAL_TX_MODIFIABLE


@dataclass(frozen=True)
class Destination:
    address: str
    amount: int


@dataclass(frozen=True)
class DecodedPsbt:
    psbt: PSBT
    canonical: str
    """The PSBT as embit serialises it (base64): what is stored and signed."""
    sighashes: tuple[bytes, ...]
    """BIP-143 SIGHASH_ALL digests, one per input, computed here."""
    input_total: int
    change: int
    destinations: tuple[Destination, ...]
    fee: int
    vsize: int

    @property
    def spends(self) -> frozenset[str]:
        return frozenset(outpoint(bytes(vin.txid), vin.vout) for vin in self.psbt.tx.vin)

    @property
    def sent(self) -> int:
        return sum(d.amount for d in self.destinations)

    @property
    def txid(self) -> str:
        return bytes(self.psbt.tx.txid()).hex()

    @property
    def digest(self) -> bytes:
        """What approvers sign: the unsigned txid and every input's BIP-143 sighash, which
        commit to all inputs, their amounts and scripts, and all outputs."""
        h = hashlib.sha256(DIGEST_TAG)
        h.update(bytes(self.psbt.tx.txid()))
        for sighash in self.sighashes:
            h.update(sighash)
        return h.digest()

    @property
    def fee_rate(self) -> int:
        """sat/vB, rounded up, over the size the transaction will have once signed."""
        return -(-self.fee // self.vsize)


def decode_psbt(text: str, script: WalletScript, chain: str) -> DecodedPsbt:
    network = network_for(chain)
    psbt = _parse(text)
    if not psbt.inputs:
        raise InvalidPayload("psbt: the transaction has no inputs")
    if not psbt.outputs:
        raise InvalidPayload("psbt: the transaction has no outputs")
    if len({(bytes(vin.txid), vin.vout) for vin in psbt.tx.vin}) != len(psbt.tx.vin):
        raise InvalidPayload("psbt: an input is spent twice")
    if psbt.unknown:
        raise InvalidPayload("psbt: unknown global fields are not accepted")
    sighashes = []
    input_total = 0
    for index in range(len(psbt.inputs)):
        input_total += _check_input(psbt, index, script)
        sighashes.append(_sighash(psbt, index, script))
    change = 0
    destinations = []
    for index, out in enumerate(psbt.tx.vout):
        if psbt.outputs[index].unknown:
            raise InvalidPayload(f"psbt: output {index} has unknown fields")
        value = _amount(out.value, f"output {index}")
        spk = bytes(out.script_pubkey.data)
        if spk == script.script_pubkey:
            change += value
            continue
        try:
            address = str(out.script_pubkey.address(network))
        except Exception:  # embit raises several types for scripts with no address
            raise InvalidPayload(
                f"psbt: output {index} pays a script with no address (only addresses are paid)"
            ) from None
        destinations.append(Destination(address, value))
    fee = input_total - sum(d.amount for d in destinations) - change
    if fee < 0:
        raise InvalidPayload("psbt: the outputs spend more than the inputs hold")
    decoded = DecodedPsbt(
        psbt=psbt,
        canonical=str(psbt.to_base64()),
        sighashes=tuple(sighashes),
        input_total=input_total,
        change=change,
        destinations=tuple(destinations),
        fee=fee,
        vsize=_estimated_vsize(psbt, script),
    )
    for index in range(len(psbt.inputs)):
        _check_partial_signatures(decoded, index, script)
    cap = fee_cap(chain)
    if fee > cap.max_fee_sats or decoded.fee_rate > cap.max_sats_per_vbyte:
        raise InvalidPayload(
            f"psbt: the fee of {fee} sats ({decoded.fee_rate} sat/vB) is above this chain's cap "
            f"of {cap.max_fee_sats} sats and {cap.max_sats_per_vbyte} sat/vB"
        )
    return decoded


def _parse(text: str) -> PSBT:
    if len(text) > MAX_PSBT_BYTES * 4 // 3 + 4:
        raise InvalidPayload("psbt: too large")
    try:
        raw = binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidPayload("psbt: not base64") from None
    if not raw.startswith(b"psbt\xff"):
        raise InvalidPayload("psbt: not a PSBT (BIP-174 magic bytes missing)")
    try:
        psbt = PSBT.parse(raw)
    except Exception as exc:  # embit raises several types for malformed PSBTs
        raise InvalidPayload(f"psbt: not a valid PSBT ({exc})") from None
    maps = _key_maps(raw, len(psbt.inputs) + len(psbt.outputs))
    if any(len({key for key, _ in pairs}) != len(pairs) for pairs in maps):
        # embit keeps the last of two equal keys for some fields: two readings of one PSBT
        raise InvalidPayload("psbt: a key appears twice in one map")
    if psbt.version == 2:
        _check_v2(psbt)
    elif psbt.version in (None, 0):
        _check_v0(psbt, dict(maps[0]))
    else:
        raise InvalidPayload("psbt: only version 0 (BIP-174) and 2 (BIP-370) PSBTs are accepted")
    return psbt


def _check_v0(psbt: PSBT, globals_: dict[bytes, bytes]) -> None:
    """The transaction embit reads is the PSBT's unsigned transaction, byte for byte. embit
    lets version 2's input and output fields (txid, vout, sequence, amount, script) override
    it, and reads an input sequence of 0 as 0xffffffff: either way custody would sign another
    transaction than the one its coordinator built."""
    unsigned = globals_.get(b"\x00", b"")
    if bytes(psbt.tx.serialize()) != unsigned:
        raise InvalidPayload(
            "psbt: the transaction read differs from the PSBT's unsigned transaction (version 2 "
            "input or output fields in a version 0 PSBT, or an input sequence of 0)"
        )


def _check_v2(psbt: PSBT) -> None:
    """BIP-370: the transaction is built from fields, each of which must be there. Modifiable
    flags and per-input lock times are not taken: custody signs one fixed transaction (ALL),
    whose lock time is the fallback one (0 when absent)."""
    if _TX_MODIFIABLE in psbt.unknown:
        raise InvalidPayload(
            "psbt: PSBT_GLOBAL_TX_MODIFIABLE is not accepted: custody signs a finished "
            "transaction with SIGHASH_ALL"
        )
    if psbt.tx_version is None:
        raise InvalidPayload("psbt: a version 2 PSBT must carry PSBT_GLOBAL_TX_VERSION")
    for index, inp in enumerate(psbt.inputs):
        if inp.txid is None or len(inp.txid) != 32 or inp.vout is None:
            raise InvalidPayload(f"psbt: input {index} lacks its previous txid or output index")
        if inp.sequence == 0:  # embit reads it as 0xffffffff: another transaction
            raise InvalidPayload(f"psbt: input {index}: a sequence of 0 is not accepted")
    for index, out in enumerate(psbt.outputs):
        if out.value is None or out.script_pubkey is None:
            raise InvalidPayload(f"psbt: output {index} lacks its amount or script")
    if psbt.tx.version != psbt.tx_version:  # embit reads version 0 as 2
        raise InvalidPayload(f"psbt: transaction version {psbt.tx_version} is not accepted")


def _key_maps(raw: bytes, scopes: int) -> list[list[tuple[bytes, bytes]]]:
    """The key-value pairs of the global map and of `scopes` input and output maps, as they
    are in the bytes of a PSBT embit has parsed already (so well formed)."""
    stream = BytesIO(raw[len(PSBT.MAGIC) :])
    maps = []
    for _ in range(1 + scopes):
        pairs = []
        while key := read_string(stream):
            pairs.append((key, read_string(stream)))
        maps.append(pairs)
    return maps


def _check_input(psbt: PSBT, index: int, script: WalletScript) -> int:
    inp = psbt.inputs[index]
    where = f"psbt: input {index}"
    if inp.unknown:
        raise InvalidPayload(f"{where} has unknown fields")
    if inp.final_scriptsig is not None or inp.final_scriptwitness is not None:
        raise InvalidPayload(f"{where} is already finalised")
    if inp.witness_utxo is None:
        raise InvalidPayload(f"{where} has no witness_utxo (only segwit inputs are signed)")
    if inp.redeem_script is not None:
        raise InvalidPayload(f"{where} has a redeem script: only native segwit inputs are signed")
    if inp.taproot_internal_key is not None or inp.taproot_scripts or inp.taproot_sigs:
        raise InvalidPayload(f"{where} has taproot fields: this wallet spends no taproot output")
    if inp.sighash_type is not None and inp.sighash_type != SIGHASH_ALL:
        raise InvalidPayload(f"{where} asks for sighash type {inp.sighash_type}; only ALL (1)")
    if bytes(inp.witness_utxo.script_pubkey.data) != script.script_pubkey:
        raise InvalidPayload(f"{where} does not spend this wallet's script")
    witness_script = None if inp.witness_script is None else bytes(inp.witness_script.data)
    if witness_script != script.witness_script:
        raise InvalidPayload(
            f"{where} must carry the wallet's witness_script"
            if script.is_multisig
            else f"{where} carries a witness_script, which a P2WPKH input has none of"
        )
    return _amount(inp.witness_utxo.value, f"input {index}")


def _amount(value: object, where: str) -> int:
    if not isinstance(value, int) or not 0 <= value <= MAX_MONEY:
        raise InvalidPayload(f"psbt: {where} has an impossible amount")
    return value


def script_code(script: WalletScript) -> Script:
    """BIP-143's scriptCode: the witness script, or for P2WPKH the P2PKH script of its key."""
    if script.witness_script is not None:
        return Script(script.witness_script)
    return Script(b"\x76\xa9\x14" + script.script_pubkey[2:] + b"\x88\xac")


def _sighash(psbt: PSBT, index: int, script: WalletScript) -> bytes:
    value = psbt.inputs[index].witness_utxo.value
    return bytes(psbt.tx.sighash_segwit(index, script_code(script), value, sighash=SIGHASH_ALL))


def _estimated_vsize(psbt: PSBT, script: WalletScript) -> int:
    base = len(psbt.tx.serialize())
    if script.witness_script is None:
        per_input = 1 + _SIGNATURE + 1 + 33
    else:
        per_input = 1 + 1 + script.threshold * _SIGNATURE + 3 + len(script.witness_script)
    weight = 4 * base + 2 + per_input * len(psbt.inputs)
    return -(-weight // 4)


def _check_partial_signatures(decoded: DecodedPsbt, index: int, script: WalletScript) -> None:
    """Signatures another cosigner already added must be by an owner, ALL, and valid."""
    for pub, signature in decoded.psbt.inputs[index].partial_sigs.items():
        key = bytes(pub.sec())
        if key not in script.owners:
            raise InvalidPayload(f"psbt: input {index} carries a signature by a non-owner key")
        try:
            verify_signature(key, bytes(signature), decoded.sighashes[index])
        except SignatureMismatch as exc:
            raise InvalidPayload(f"psbt: input {index}: {exc}") from None


def verify_signature(public_key: bytes, signature: bytes, sighash: bytes) -> None:
    """A DER, low-s ECDSA signature with SIGHASH_ALL appended, by `public_key` over `sighash`."""
    if not signature or signature[-1] != SIGHASH_ALL:
        raise SignatureMismatch("signature is not SIGHASH_ALL")
    der = signature[:-1]
    try:
        ok = coincurve.PublicKey(public_key).verify(der, sighash, hasher=None)
    except ValueError:
        ok = False
    if not ok or not _is_low_s_der(der):
        raise SignatureMismatch("signature does not verify, or is not low-s DER")


def _is_low_s_der(der: bytes) -> bool:
    if len(der) < 8 or der[0] != 0x30 or der[1] != len(der) - 2 or der[2] != 0x02:
        return False
    r_len = der[3]
    s_at = 4 + r_len
    if der[s_at] != 0x02 or s_at + 2 + der[s_at + 1] != len(der):
        return False
    return is_low_s(int.from_bytes(der[s_at + 2 :], "big"))


def der_signature(r: int, s: int) -> bytes:
    """Strict DER (BIP-66) of a low-s (r, s), with SIGHASH_ALL appended."""

    def integer(value: int) -> bytes:
        raw = value.to_bytes(32, "big").lstrip(b"\x00")
        if raw[0] & 0x80:
            raw = b"\x00" + raw
        return b"\x02" + bytes([len(raw)]) + raw

    body = integer(r) + integer(s)
    return b"\x30" + bytes([len(body)]) + body + bytes([SIGHASH_ALL])


def add_signature(decoded: DecodedPsbt, index: int, public_key: bytes, signature: bytes) -> None:
    """Add one owner's partial signature, verified first."""
    verify_signature(public_key, signature, decoded.sighashes[index])
    decoded.psbt.inputs[index].partial_sigs[PublicKey.parse(public_key)] = signature


def signatures(decoded: DecodedPsbt, index: int) -> dict[bytes, bytes]:
    return {bytes(k.sec()): bytes(v) for k, v in decoded.psbt.inputs[index].partial_sigs.items()}


def finalize(decoded: DecodedPsbt, script: WalletScript) -> tuple[str, str] | None:
    """(raw transaction hex, txid) once every input has `threshold` signatures; else None.

    Sets each input's final witness in the PSBT too (BIP-174 finaliser role)."""
    witnesses = []
    for index in range(len(decoded.psbt.inputs)):
        sigs = signatures(decoded, index)
        if len(sigs) < script.threshold:
            return None
        if script.witness_script is None:
            key = script.owners[0]
            witnesses.append(Witness([sigs[key], key]))
        else:
            # CHECKMULTISIG wants signatures in the script's key order: sortedmulti's order.
            ordered = [sigs[k] for k in sorted(script.owners) if k in sigs][: script.threshold]
            witnesses.append(Witness([b"", *ordered, script.witness_script]))
    # A copy: the PSBT's own unsigned transaction must keep empty witnesses.
    tx = Transaction.parse(bytes(decoded.psbt.tx.serialize()))
    for index, witness in enumerate(witnesses):
        decoded.psbt.inputs[index].final_scriptwitness = witness
        tx.vin[index].witness = witness
    return bytes(tx.serialize()).hex(), bytes(tx.txid()).hex()


def outpoint(txid: bytes, vout: int) -> str:
    """`txid:vout` with the txid as block explorers show it."""
    return f"{txid.hex()}:{vout}"


def spent_outpoints(text: str) -> frozenset[str]:
    """The coins a stored (already decoded once) PSBT spends."""
    return frozenset(outpoint(bytes(vin.txid), vin.vout) for vin in _parse(text).tx.vin)
