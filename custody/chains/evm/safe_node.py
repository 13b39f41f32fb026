"""What custody asks a node about Safes: where the contracts are, and a Safe's owners,
threshold and nonce (plain `eth_call`s of the v1.4.1 views)."""

from __future__ import annotations

from dataclasses import dataclass

from custody.chains.evm import safe
from custody.chains.evm.rpc import EvmNode
from custody.chains.values import EvmAddress


def has_code(node: EvmNode, address: EvmAddress) -> bool:
    return node.call("eth_getCode", [str(address), "latest"]) not in (None, "0x", "0x0")


def view(node: EvmNode, contract: EvmAddress, selector: str) -> bytes:
    answer = node.call("eth_call", [{"to": str(contract), "data": selector}, "latest"])
    return bytes.fromhex(str(answer).removeprefix("0x"))


def safe_nonce(node: EvmNode, address: EvmAddress) -> int:
    """The Safe's next SafeTx nonce; 0 for a Safe not deployed yet."""
    if not has_code(node, address):
        return 0
    return safe.decode_uint(view(node, address, safe.NONCE))


@dataclass(frozen=True)
class OnChainSafe:
    owners: list[EvmAddress]
    threshold: int
    version: str


def read_safe(node: EvmNode, address: EvmAddress) -> OnChainSafe | None:
    """Owners, threshold and version of the Safe at `address`; None when no contract is there."""
    if not has_code(node, address):
        return None
    return OnChainSafe(
        owners=safe.decode_owners(view(node, address, safe.GET_OWNERS)),
        threshold=safe.decode_uint(view(node, address, safe.GET_THRESHOLD)),
        version=safe.decode_string(view(node, address, safe.VERSION_CALL)),
    )


@dataclass(frozen=True)
class Contracts:
    """The Safe contracts a new wallet on this chain is computed with."""

    deployment: safe.SafeDeployment
    proxy_code: bytes
    development: bool
    """Not the canonical deployment: `wallets deploy` deploys singleton and factory first."""


def contracts_on(node: EvmNode | None) -> Contracts:
    """The canonical v1.4.1 contracts where the chain has them (their proxy code read from
    the factory), else the development deployment custody makes itself."""
    if node is None:
        return Contracts(safe.CANONICAL, safe.creation_code("proxy"), development=False)
    if has_code(node, safe.CANONICAL_FACTORY):
        code = safe.decode_bytes(view(node, safe.CANONICAL_FACTORY, safe.PROXY_CREATION_CODE))
        return Contracts(safe.CANONICAL, code, development=False)
    return Contracts(safe.dev_deployment(), safe.creation_code("proxy"), development=True)
