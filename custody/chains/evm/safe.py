"""Safe v1.4.1 multisig wallets: the proxy address, the SafeTx and its EIP-712 hash, and the
calls custody makes to a Safe (setup, execTransaction, the views it reads).

Everything here is computed from the Safe's published contract interface, so that an address
shown before deployment and a hash approvers sign are the ones the contracts will use; tests
compare both with what the deployed contracts say (`getTransactionHash`, the factory's event).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from custody.chains.errors import InvalidPayload
from custody.chains.values import Digest, EvmAddress

VERSION = "1.4.1"
ZERO_ADDRESS = EvmAddress.parse("0x" + "00" * 20)
CALL, DELEGATECALL = 0, 1

# The canonical v1.4.1 deployments (safe-deployments), the same address on every chain that has
# them: production chains use these.
CANONICAL_FACTORY = EvmAddress.parse("0x4e1DCf7AD4e460CfD30791CCC4F9c8a4f820ec67")
CANONICAL_SINGLETON = EvmAddress.parse("0x41675C099F32341bf84BFc5382aF534df5C7461a")
# A development chain (anvil, hardhat) lacks them; custody deploys the singleton and factory
# there itself, through the deterministic CREATE2 deployer those nodes ship, so their addresses
# are known before they exist, like the canonical ones.
CREATE2_DEPLOYER = EvmAddress.parse("0x4e59b44847b379578588920cA78FbF26c0B4956C")
DEV_SALT = b"\x00" * 32

_DOMAIN_TYPEHASH = keccak(text="EIP712Domain(uint256 chainId,address verifyingContract)")
_SAFE_TX_TYPEHASH = keccak(
    text="SafeTx(address to,uint256 value,bytes data,uint8 operation,uint256 safeTxGas,"
    "uint256 baseGas,uint256 gasPrice,address gasToken,address refundReceiver,uint256 nonce)"
)
_SETUP = keccak(text="setup(address[],uint256,address,bytes,address,address,uint256,address)")[:4]
_SETUP_TYPES = [
    "address[]",
    "uint256",
    "address",
    "bytes",
    "address",
    "address",
    "uint256",
    "address",
]
_CREATE_PROXY = keccak(text="createProxyWithNonce(address,bytes,uint256)")[:4]
_EXEC = keccak(
    text="execTransaction(address,uint256,bytes,uint8,uint256,uint256,uint256,address,address,bytes)"
)[:4]
_EXEC_TYPES = [
    "address",
    "uint256",
    "bytes",
    "uint8",
    "uint256",
    "uint256",
    "uint256",
    "address",
    "address",
    "bytes",
]
# Views custody reads (custody.chains.evm.safe_node): selectors of the v1.4.1 interface.
NONCE = "0x" + keccak(text="nonce()")[:4].hex()
GET_OWNERS = "0x" + keccak(text="getOwners()")[:4].hex()
GET_THRESHOLD = "0x" + keccak(text="getThreshold()")[:4].hex()
VERSION_CALL = "0x" + keccak(text="VERSION()")[:4].hex()
PROXY_CREATION_CODE = "0x" + keccak(text="proxyCreationCode()")[:4].hex()


@dataclass(frozen=True)
class SafeDeployment:
    """Where a chain's Safe contracts are: fixed per wallet when it is created."""

    factory: EvmAddress
    singleton: EvmAddress


CANONICAL = SafeDeployment(CANONICAL_FACTORY, CANONICAL_SINGLETON)


@dataclass(frozen=True)
class SafeTx:
    """The transaction the owners sign; gas refunds are never used (all zero), so the executor
    pays gas from its own wallet and nothing in the Safe pays anyone back."""

    to: EvmAddress
    value: int
    data: bytes
    operation: int
    nonce: int
    safe_tx_gas: int = 0
    base_gas: int = 0
    gas_price: int = 0
    gas_token: EvmAddress = ZERO_ADDRESS
    refund_receiver: EvmAddress = ZERO_ADDRESS

    def __post_init__(self) -> None:
        if self.operation not in (CALL, DELEGATECALL):
            raise InvalidPayload(f"Safe operation must be 0 or 1, got {self.operation!r}")
        if (self.safe_tx_gas, self.base_gas, self.gas_price) != (0, 0, 0) or (
            self.gas_token != ZERO_ADDRESS or self.refund_receiver != ZERO_ADDRESS
        ):
            raise InvalidPayload("custody's SafeTx pays no refunds: gas fields must be zero")

    def hash(self, chain_id: int, safe: EvmAddress) -> Digest:
        """The `safeTxHash`: EIP-712 over the Safe's domain (chain id and the Safe's address)."""
        domain = keccak(
            encode(["bytes32", "uint256", "address"], [_DOMAIN_TYPEHASH, chain_id, str(safe)])
        )
        struct = keccak(
            encode(
                [
                    "bytes32",
                    "address",
                    "uint256",
                    "bytes32",
                    "uint8",
                    "uint256",
                    "uint256",
                    "uint256",
                    "address",
                    "address",
                    "uint256",
                ],
                [
                    _SAFE_TX_TYPEHASH,
                    str(self.to),
                    self.value,
                    keccak(self.data),
                    self.operation,
                    self.safe_tx_gas,
                    self.base_gas,
                    self.gas_price,
                    str(self.gas_token),
                    str(self.refund_receiver),
                    self.nonce,
                ],
            )
        )
        return Digest(keccak(b"\x19\x01" + domain + struct))

    def exec_calldata(self, signatures: bytes) -> bytes:
        """`execTransaction(...)` with the owners' signatures, sorted by owner already."""
        return _EXEC + encode(
            _EXEC_TYPES,
            [
                str(self.to),
                self.value,
                self.data,
                self.operation,
                self.safe_tx_gas,
                self.base_gas,
                self.gas_price,
                str(self.gas_token),
                str(self.refund_receiver),
                signatures,
            ],
        )


def setup_initializer(owners: list[EvmAddress], threshold: int) -> bytes:
    """`setup(...)`: the owners and threshold, no module, no fallback handler, no payment."""
    return _SETUP + encode(
        _SETUP_TYPES,
        [
            [str(o) for o in owners],
            threshold,
            str(ZERO_ADDRESS),  # no delegate call during setup
            b"",
            str(ZERO_ADDRESS),  # no fallback handler
            str(ZERO_ADDRESS),  # no payment for the deployment
            0,
            str(ZERO_ADDRESS),
        ],
    )


def create_proxy_calldata(singleton: EvmAddress, initializer: bytes, salt_nonce: int) -> bytes:
    return _CREATE_PROXY + encode(
        ["address", "bytes", "uint256"], [str(singleton), initializer, salt_nonce]
    )


def proxy_address(
    deployment: SafeDeployment, initializer: bytes, salt_nonce: int, proxy_code: bytes
) -> EvmAddress:
    """CREATE2 through the factory, as SafeProxyFactory.createProxyWithNonce computes it."""
    salt = keccak(keccak(initializer) + salt_nonce.to_bytes(32, "big"))
    init_code = proxy_code + bytes(12) + bytes(deployment.singleton)
    return create2_address(deployment.factory, salt, init_code)


def create2_address(deployer: EvmAddress, salt: bytes, init_code: bytes) -> EvmAddress:
    digest = keccak(b"\xff" + bytes(deployer) + salt + keccak(init_code))
    return EvmAddress.parse(to_checksum_address(digest[12:]))


def salt_nonce_for(wallet_name: str) -> int:
    """One Safe per wallet name and owner set: the name picks the CREATE2 salt."""
    return int.from_bytes(keccak(text=f"custody:safe:{wallet_name}"), "big")


def signature_bytes(signatures: list[tuple[EvmAddress, int, int, int]]) -> bytes:
    """r || s || v per owner, ascending by owner address: the order checkNSignatures demands."""
    ordered = sorted(signatures, key=lambda item: bytes(item[0]))
    return b"".join(
        r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v]) for _, r, s, v in ordered
    )


def decode_owners(result: bytes) -> list[EvmAddress]:
    (owners,) = decode(["address[]"], result)
    return [EvmAddress.parse(to_checksum_address(o)) for o in owners]


def decode_uint(result: bytes) -> int:
    (value,) = decode(["uint256"], result)
    return int(value)


def decode_string(result: bytes) -> str:
    (value,) = decode(["string"], result)
    return str(value)


def decode_bytes(result: bytes) -> bytes:
    (value,) = decode(["bytes"], result)
    return bytes(value)


# The published creation bytecode, from safe-eth-py's artifacts (a development dependency):
# read as data files, without importing safe-eth-py and web3 into custody.
_ARTIFACTS = {
    "singleton": "Safe_V1_4_1",
    "factory": "ProxyFactory_V1_4_1",
    "proxy": "Proxy_V1_4_1",
}


class ArtifactsMissing(InvalidPayload):
    status = 409
    title = "Safe contract bytecode unavailable"
    slug = "safe-artifacts-missing"


@cache
def creation_code(name: str) -> bytes:
    """Creation bytecode of the Safe singleton, proxy factory or proxy."""
    import importlib.metadata

    try:
        distribution = importlib.metadata.distribution("safe-eth-py")
    except importlib.metadata.PackageNotFoundError:
        raise ArtifactsMissing(
            "the Safe contracts' bytecode comes from the safe-eth-py package, which is not "
            "installed (pip install 'custody[dev]'); production chains use the canonical "
            "deployments and need no bytecode"
        ) from None
    path = distribution.locate_file(f"safe_eth/eth/contracts/abis/{_ARTIFACTS[name]}.json")
    with open(str(path), encoding="utf-8") as file:
        artifact: dict[str, Any] = json.load(file)
    return bytes.fromhex(str(artifact["bytecode"]).removeprefix("0x"))


def dev_deployment() -> SafeDeployment:
    """The singleton and factory as custody deploys them on a development chain."""
    return SafeDeployment(
        factory=create2_address(CREATE2_DEPLOYER, DEV_SALT, creation_code("factory")),
        singleton=create2_address(CREATE2_DEPLOYER, DEV_SALT, creation_code("singleton")),
    )
