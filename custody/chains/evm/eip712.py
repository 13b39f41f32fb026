"""EIP-712 typed data: validate the message, spell it canonically, compute the digest to sign.

Validation is ours and strict where leniency would let one message mean two things: every struct
field present and nothing else, integers fitting their type, addresses with a valid checksum if
mixed case, every type declared. The domain must name `name`, `version`, `chainId` and
`verifyingContract`: a trade is matched to a venue by chain and contract, and a signature
without them could be replayed on another chain or contract.

Hashing is eth-account's, over the canonical form; the tests hold it against a hand-written
encoder from the specification (`tests/chains/eip712_oracle.py`). Caps on size come first, so
a hostile body is refused after one cheap read instead of seconds of hashing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from custody.chains.errors import InvalidPayload
from custody.chains.evm.typed_atoms import atomic_value
from custody.chains.evm.typed_canonical import CanonicalWalk
from custody.chains.evm.typed_limits import check_limits
from custody.chains.evm.typed_types import Fields, parse_types
from custody.chains.values import ChainId, Digest, EvmAddress
from custody.errors import CustodyError

DOMAIN_FIELDS = (
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
)
REQUIRED_DOMAIN = ("name", "version", "chainId", "verifyingContract")
_KEYS = {"types", "primaryType", "domain", "message"}


@dataclass(frozen=True, slots=True)
class TypedMessage:
    digest: Digest
    domain_separator: bytes
    struct_hash: bytes
    primary_type: str
    name: str
    version: str
    chain_id: ChainId
    verifying_contract: EvmAddress


def typed_data_digest(data: object) -> TypedMessage:
    """Validate `{types, primaryType, domain, message}` and hash it as EIP-712 says."""
    return canonical_typed_data(data)[1]


def canonical_typed_data(data: object) -> tuple[dict[str, Any], TypedMessage]:
    """The validated message in canonical form, and its digest (raises InvalidPayload)."""
    # (1) caps, before anything reads a node twice
    check_limits(data)
    if not isinstance(data, Mapping) or set(data) != _KEYS:
        raise InvalidPayload("typed data must have exactly types, primaryType, domain and message")
    # (2) types, domain and primary type
    types = _types_with_domain(data["types"], data["domain"])
    primary = data["primaryType"]
    if not isinstance(primary, str) or primary not in types or primary == "EIP712Domain":
        raise InvalidPayload("primaryType must name one of the message types")
    # (3) every value checked and spelled one way, within the hashing budget
    walk = CanonicalWalk(types)
    canonical = {
        "types": {
            name: [{"name": field, "type": kind} for field, kind in fields]
            for name, fields in sorted(types.items())
        },
        "primaryType": primary,
        "domain": walk.struct("EIP712Domain", data["domain"], "domain"),
        "message": walk.struct(primary, data["message"], "message"),
    }
    # (4) the digest of the canonical form
    return canonical, _message(canonical)


def _types_with_domain(raw_types: object, domain: object) -> dict[str, Fields]:
    types = parse_types(raw_types)
    if not isinstance(domain, Mapping):
        raise InvalidPayload("typed data domain must be an object")
    missing = [key for key in REQUIRED_DOMAIN if key not in domain]
    if missing:
        raise InvalidPayload(f"typed data domain lacks {', '.join(missing)}")
    domain_type = tuple((n, t) for n, t in DOMAIN_FIELDS if n in domain)
    declared = types.get("EIP712Domain")
    if declared is not None and declared != domain_type:
        raise InvalidPayload("EIP712Domain must list exactly the domain's fields, in EIP-712 order")
    return {**types, "EIP712Domain": domain_type}


def _message(canonical: dict[str, Any]) -> TypedMessage:
    # Imported here: eth-account pulls in half a second of imports that CLI commands which never
    # hash typed data should not pay (tests/cli/test_cli_entry_point.py).
    from eth_account._utils.encode_typed_data.encoding_and_hashing import (
        hash_domain,
        hash_struct,
    )

    domain, primary = canonical["domain"], canonical["primaryType"]
    try:
        separator = bytes(hash_domain(domain))
        struct_hash = bytes(hash_struct(primary, canonical["types"], canonical["message"]))
    except Exception as error:
        # Validated input that eth-account cannot hash is our bug: never sign a guess.
        raise CustodyError("typed data could not be hashed", status=500) from error
    return TypedMessage(
        digest=Digest.keccak(b"\x19\x01" + separator + struct_hash),
        domain_separator=separator,
        struct_hash=struct_hash,
        primary_type=primary,
        name=domain["name"],
        version=domain["version"],
        chain_id=ChainId(int(atomic_value("uint256", domain["chainId"], "domain.chainId"))),
        verifying_contract=EvmAddress.parse(domain["verifyingContract"], what="verifyingContract"),
    )
