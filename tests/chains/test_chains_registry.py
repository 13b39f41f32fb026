from __future__ import annotations

import pytest

from custody.chains import BUILTIN_CHAINS, Chain, InvalidPayload, validate_chain_name
from custody.chains.registry import builtin_chain_for


def test_builtin_chains() -> None:
    assert BUILTIN_CHAINS["ethereum"] == Chain("ethereum", "evm", 1, "ETH", 18)
    assert BUILTIN_CHAINS["sepolia"] == Chain("sepolia", "evm", 11155111, "ETH", 18)
    assert builtin_chain_for(11155111) is BUILTIN_CHAINS["sepolia"]
    assert builtin_chain_for(137) is None


def test_builtin_chains_are_read_only() -> None:
    with pytest.raises(TypeError):
        BUILTIN_CHAINS["evil"] = Chain("evil", "evm", 1, "ETH", 18)  # type: ignore[index]


@pytest.mark.parametrize("name", ["a", "ethereum", "base-sepolia", "l2", "a" * 32])
def test_valid_chain_names(name: str) -> None:
    assert validate_chain_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "1chain", "-x", "Ethereum", "eth_main", "a" * 33, "eth\n", "éth", None, 1]
)
def test_invalid_chain_names(name: object) -> None:
    with pytest.raises(InvalidPayload, match="chain name"):
        validate_chain_name(name)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "bitcoin"},
        {"evm_chain_id": 0},
        {"evm_chain_id": 2**64},
        {"native_asset": ""},
        {"native_asset": "E TH"},
        {"native_decimals": -1},
        {"native_decimals": 78},
        {"native_decimals": True},
    ],
)
def test_chain_validates_its_fields(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {
        "name": "polygon",
        "kind": "evm",
        "evm_chain_id": 137,
        "native_asset": "POL",
        "native_decimals": 18,
    }
    with pytest.raises(InvalidPayload):
        Chain(**(base | kwargs))  # type: ignore[arg-type]
