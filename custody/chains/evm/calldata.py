"""Decoding contract calldata into the facts a policy can judge.

Known methods: ERC-20 `transfer`, `approve`, `transferFrom` (whose selector ERC-721 shares; the
asset registry says which one a contract is), ERC-721 `safeTransferFrom` in both overloads, and
Safe `execTransaction`, whose inner call is decoded too. Anything else is `unknown_method`.

Arguments must be the canonical ABI encoding: re-encoding the decoded values has to give back
the exact bytes. That refuses trailing bytes, odd offsets and dirty padding, so what a policy
judged is the only thing those bytes can mean to the contract.

`unlimited_approval` is raised for an `approve` of at least 2**255: the usual "infinite" values
are 2**256-1 and 2**255, and no token supply comes near either, so anything that large is an
unlimited allowance in all but name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from custody.chains.errors import InvalidPayload

UNLIMITED_APPROVAL = 2**255
DELEGATECALL = 1

ArgValue = str | int | bool | bytes


@dataclass(frozen=True, slots=True)
class _Method:
    name: str
    signature: str
    arg_names: tuple[str, ...]
    arg_types: tuple[str, ...]

    @property
    def selector(self) -> str:
        return "0x" + keccak(text=self.signature)[:4].hex()


def _method(name: str, args: str) -> _Method:
    pairs = [arg.split(" ") for arg in args.split(",")]
    types = tuple(kind for kind, _ in pairs)
    return _Method(name, f"{name}({','.join(types)})", tuple(n for _, n in pairs), types)


_KNOWN = (
    _method("transfer", "address to,uint256 amount"),
    _method("approve", "address spender,uint256 amount"),
    _method("transferFrom", "address from,address to,uint256 amount"),
    _method("safeTransferFrom", "address from,address to,uint256 token_id"),
    _method("safeTransferFrom", "address from,address to,uint256 token_id,bytes data"),
    _method(
        "execTransaction",
        "address to,uint256 value,bytes data,uint8 operation,uint256 safe_tx_gas,"
        "uint256 base_gas,uint256 gas_price,address gas_token,address refund_receiver,"
        "bytes signatures",
    ),
)
METHODS: Mapping[str, _Method] = MappingProxyType({m.selector: m for m in _KNOWN})


@dataclass(frozen=True, slots=True)
class DecodedCall:
    method: str
    """The method's name, or "unknown"."""
    selector: str
    """`0x` and 8 lower-case hex digits."""
    signature: str | None
    args: Mapping[str, ArgValue] = field(default_factory=lambda: MappingProxyType({}))
    """Addresses EIP-55 checksummed, integers as int, bytes as bytes."""
    delegatecall: bool = False
    unlimited_approval: bool = False
    unknown_method: bool = False
    inner: DecodedCall | None = None
    """The call a Safe `execTransaction` makes, when it carries calldata."""

    @property
    def flags(self) -> frozenset[str]:
        """This call's flags and its inner call's, named as `custody.policy.CallFlag` values."""
        own = {
            name
            for name, raised in (
                ("delegatecall", self.delegatecall),
                ("unlimited_approval", self.unlimited_approval),
                ("unknown_method", self.unknown_method),
            )
            if raised
        }
        return frozenset(own) | (self.inner.flags if self.inner is not None else frozenset())


def decode_calldata(data: bytes | str) -> DecodedCall:
    raw = _bytes(data)
    if len(raw) < 4:
        raise InvalidPayload(f"calldata must start with a 4-byte selector, got {len(raw)} bytes")
    selector = "0x" + raw[:4].hex()
    method = METHODS.get(selector)
    if method is None:
        return DecodedCall("unknown", selector, None, unknown_method=True)
    args = _decode_args(method, raw[4:])
    if method.name == "execTransaction":
        return _safe_transaction(method, selector, args)
    unlimited = method.name == "approve" and int(args["amount"]) >= UNLIMITED_APPROVAL
    return DecodedCall(method.name, selector, method.signature, args, unlimited_approval=unlimited)


def _bytes(data: bytes | str) -> bytes:
    if isinstance(data, bytes):
        return data
    if not isinstance(data, str) or not data.startswith("0x") or len(data) % 2:
        raise InvalidPayload("calldata must be bytes or 0x-prefixed hex with an even length")
    try:
        return bytes.fromhex(data[2:])
    except ValueError:
        raise InvalidPayload("calldata is not valid hex") from None


def _decode_args(method: _Method, body: bytes) -> Mapping[str, ArgValue]:
    try:
        values = decode(list(method.arg_types), body, strict=True)
    except (DecodingError, OverflowError, ValueError) as error:
        raise InvalidPayload(f"calldata for {method.signature} does not decode: {error}") from None
    if encode(list(method.arg_types), values) != body:
        raise InvalidPayload(
            f"calldata for {method.signature} is not canonically encoded"
            " (trailing bytes, unusual offsets or dirty padding)"
        )
    decoded = {
        name: to_checksum_address(value) if kind == "address" else value
        for name, kind, value in zip(method.arg_names, method.arg_types, values, strict=True)
    }
    # Read-only: a decoded call is evidence of what will be signed, not a draft to edit.
    return MappingProxyType(decoded)


def _safe_transaction(method: _Method, selector: str, args: Mapping[str, ArgValue]) -> DecodedCall:
    operation = args["operation"]
    if operation not in (0, DELEGATECALL):
        raise InvalidPayload(
            f"Safe operation must be 0 (call) or 1 (delegatecall), got {operation!r}"
        )
    data = args["data"]
    assert isinstance(data, bytes)  # the ABI type is bytes
    inner = None if not data else _inner(data)
    return DecodedCall(
        method.name,
        selector,
        method.signature,
        args,
        delegatecall=operation == DELEGATECALL,
        inner=inner,
    )


def _inner(data: bytes) -> DecodedCall:
    try:
        return decode_calldata(data)
    except InvalidPayload:
        # The Safe would pass these bytes on as they are; what they do is unknown, so say so.
        selector = "0x" + data[:4].hex().ljust(8, "0")
        return DecodedCall("unknown", selector, None, unknown_method=True)
