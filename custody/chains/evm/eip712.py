"""EIP-712 typed data: validate the message and compute the digest that gets signed.

Implemented from the specification (encodeType, encodeData, hashStruct) rather than delegated,
so the tests can hold it against eth-account as an independent implementation. Validation is
strict where leniency would let one message mean two things: every struct field must be present
and nothing else, integers must fit their type, addresses must carry a valid checksum if mixed
case. The domain must name `name`, `version`, `chainId` and `verifyingContract`: a trade is
matched to a venue by chain and contract, and a signature without them could be replayed on
another chain or contract.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from eth_abi.abi import encode
from eth_utils.crypto import keccak

from custody.chains.errors import InvalidPayload
from custody.chains.values import ChainId, Digest, EvmAddress

DOMAIN_FIELDS = (
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
)
REQUIRED_DOMAIN = ("name", "version", "chainId", "verifyingContract")
MAX_DEPTH = 16
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_ARRAY = re.compile(r"(.+)\[([0-9]*)\]")
_INT = re.compile(r"(u?)int([0-9]{1,3})")
_FIXED_BYTES = re.compile(r"bytes([0-9]{1,2})")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)")
_HEX = re.compile(r"0x[0-9a-fA-F]*")
_MAX_DIGITS = len(str(2**256))

Types = Mapping[str, tuple[tuple[str, str], ...]]


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
    if not isinstance(data, Mapping) or set(data) != {"types", "primaryType", "domain", "message"}:
        raise InvalidPayload("typed data must have exactly types, primaryType, domain and message")
    types = _types(data["types"])
    domain = data["domain"]
    if not isinstance(domain, Mapping):
        raise InvalidPayload("typed data domain must be an object")
    missing = [key for key in REQUIRED_DOMAIN if key not in domain]
    if missing:
        raise InvalidPayload(f"typed data domain lacks {', '.join(missing)}")
    domain_type = tuple((n, t) for n, t in DOMAIN_FIELDS if n in domain)
    declared = types.get("EIP712Domain")
    if declared is not None and declared != domain_type:
        raise InvalidPayload("EIP712Domain must list exactly the domain's fields, in EIP-712 order")
    all_types = {**types, "EIP712Domain": domain_type}
    primary = data["primaryType"]
    if not isinstance(primary, str) or primary not in types or primary == "EIP712Domain":
        raise InvalidPayload("primaryType must name one of the message types")
    separator = _hash_struct(all_types, "EIP712Domain", domain, "domain", 0)
    struct_hash = _hash_struct(all_types, primary, data["message"], "message", 0)
    return TypedMessage(
        digest=Digest.keccak(b"\x19\x01" + separator + struct_hash),
        domain_separator=separator,
        struct_hash=struct_hash,
        primary_type=primary,
        name=str(domain["name"]),
        version=str(domain["version"]),
        chain_id=ChainId(int(atomic_value("uint256", domain["chainId"], "domain.chainId"))),
        verifying_contract=EvmAddress.parse(domain["verifyingContract"], what="verifyingContract"),
    )


def _types(raw: object) -> dict[str, tuple[tuple[str, str], ...]]:
    if not isinstance(raw, Mapping):
        raise InvalidPayload("typed data types must be an object")
    types: dict[str, tuple[tuple[str, str], ...]] = {}
    for name, fields in raw.items():
        if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
            raise InvalidPayload(f"type name {name!r} is not an identifier")
        if not isinstance(fields, list) or not all(_is_field(f) for f in fields):
            raise InvalidPayload(f"type {name} must be a list of {{name, type}} fields")
        pairs = tuple((f["name"], f["type"]) for f in fields)
        if len({field_name for field_name, _ in pairs}) != len(pairs):
            raise InvalidPayload(f"type {name} has a field twice")
        types[name] = pairs
    return types


def _is_field(item: object) -> bool:
    return (
        isinstance(item, Mapping)
        and set(item) == {"name", "type"}
        and all(isinstance(item[key], str) for key in ("name", "type"))
        and _IDENTIFIER.fullmatch(item["name"]) is not None
    )


def encode_type(types: Types, primary: str) -> str:
    """`Mail(Person from,Person to,string contents)Person(string name,address wallet)`."""
    deps = sorted(_dependencies(types, primary, set()) - {primary})
    return "".join(
        f"{name}({','.join(f'{kind} {field}' for field, kind in types[name])})"
        for name in [primary, *deps]
    )


def _dependencies(types: Types, name: str, found: set[str]) -> set[str]:
    if name in found or name not in types:
        return found
    found.add(name)
    for _, kind in types[name]:
        _dependencies(types, _base(kind), found)
    return found


def _base(kind: str) -> str:
    while (match := _ARRAY.fullmatch(kind)) is not None:
        kind = match[1]
    return kind


def _hash_struct(types: Types, name: str, value: object, path: str, depth: int) -> bytes:
    if depth > MAX_DEPTH:
        raise InvalidPayload(f"{path}: nested deeper than {MAX_DEPTH}")
    if not isinstance(value, Mapping):
        raise InvalidPayload(f"{path} must be an object of type {name}")
    fields = types[name]
    expected = {field for field, _ in fields}
    if set(value) != expected:
        extra, absent = sorted(set(value) - expected), sorted(expected - set(value))
        raise InvalidPayload(f"{path} ({name}): unexpected {extra}, missing {absent}")
    encoded = b"".join(
        _encode_value(types, kind, value[field], f"{path}.{field}", depth) for field, kind in fields
    )
    return keccak(keccak(text=encode_type(types, name)) + encoded)


def _encode_value(types: Types, kind: str, value: object, path: str, depth: int) -> bytes:
    array = _ARRAY.fullmatch(kind)
    if array is not None:
        if not isinstance(value, list) or (array[2] and len(value) != int(array[2])):
            raise InvalidPayload(f"{path} must be a list for {kind}")
        items = (
            _encode_value(types, array[1], item, f"{path}[{i}]", depth + 1)
            for i, item in enumerate(value)
        )
        return keccak(b"".join(items))
    if kind in types:
        return _hash_struct(types, kind, value, path, depth + 1)
    if kind == "string":
        if not isinstance(value, str):
            raise InvalidPayload(f"{path} must be a string")
        return keccak(value.encode("utf-8"))
    if kind == "bytes":
        return keccak(atomic_value("bytes", value, path))  # type: ignore[arg-type]
    return encode([kind], [atomic_value(kind, value, path)])


# Atomic values, as JSON carries them: 256-bit integers arrive as decimal or 0x-hex strings;
# numbers are accepted only while exact (no floats, no bools), and nothing is truncated to fit.
def atomic_value(kind: str, value: object, path: str) -> int | bool | str | bytes:
    if kind == "address":
        return EvmAddress.parse(value, what=path).checksummed
    if kind == "bool":
        if not isinstance(value, bool):
            raise InvalidPayload(f"{path} must be true or false")
        return value
    if kind == "bytes":
        return _hex_bytes(value, path)
    integer = _INT.fullmatch(kind)
    if integer is not None:
        return _integer(kind, integer[1] == "", int(integer[2]), value, path)
    fixed = _FIXED_BYTES.fullmatch(kind)
    if fixed is not None and 1 <= int(fixed[1]) <= 32:
        raw = _hex_bytes(value, path)
        if len(raw) != int(fixed[1]):
            raise InvalidPayload(f"{path} must be exactly {fixed[1]} bytes for {kind}")
        return raw
    raise InvalidPayload(f"{path}: unknown type {kind}")


def _integer(kind: str, signed: bool, bits: int, value: object, path: str) -> int:
    if bits % 8 or not 8 <= bits <= 256:
        raise InvalidPayload(f"{path}: unknown type {kind}")
    number: int
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _DECIMAL.fullmatch(value):
        # More digits than 2**256 has never fit; int() would also refuse past 4,300 digits.
        if len(value.lstrip("-")) > _MAX_DIGITS:
            raise InvalidPayload(f"{path} does not fit {kind}")
        number = int(value)
    elif isinstance(value, str) and _HEX.fullmatch(value) and len(value) > 2:
        number = int(value, 16)
    else:
        raise InvalidPayload(f"{path} must be an integer (number or decimal/0x string) for {kind}")
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else (0, 2**bits)
    if not low <= number < high:
        raise InvalidPayload(f"{path} does not fit {kind}")
    return number


def _hex_bytes(value: object, path: str) -> bytes:
    if not isinstance(value, str) or not _HEX.fullmatch(value) or len(value) % 2:
        raise InvalidPayload(f"{path} must be 0x-prefixed hex of whole bytes")
    return bytes.fromhex(value[2:])
