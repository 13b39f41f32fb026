from __future__ import annotations

import pytest

from custody.chains import Amount, ChainId, Digest, EvmAddress, InvalidPayload
from custody.errors import ValidationFailed

CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # from the EIP-55 specification


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1", 1),
        ("1000000000000000000", 10**18),
        (str(2**256 - 1), 2**256 - 1),
    ],
)
def test_amount_parses_decimal_strings(text: str, expected: int) -> None:
    assert Amount.parse(text) == Amount(expected)
    assert str(Amount.parse(text)) == text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1.5, "amount must be a decimal string of base units, got a number"),
        (1e18, "got a number"),
        (10**18, "got a number"),
        (True, "got a boolean"),
        (None, "got null"),
        (["1"], "got a list"),
        ({"v": "1"}, "got an object"),
        (b"1", "got bytes"),
        ("", "digits only"),
        ("-1", "digits only"),
        ("+1", "digits only"),
        (" 1", "digits only"),
        ("1 ", "digits only"),
        ("1\n", "digits only"),
        ("1e18", "digits only"),
        ("1.0", "digits only"),
        ("1_000", "digits only"),
        ("0x10", "digits only"),
        ("\u0661", "digits only"),  # ARABIC-INDIC DIGIT ONE: int() accepts it
        ("\uff11", "digits only"),  # FULLWIDTH DIGIT ONE: int() accepts it
        ("01", "leading zeros"),
        ("00", "leading zeros"),
        (str(2**256), "too large"),
        ("9" * 78, "too large"),
        ("9" * 5000, "too large (5000 digits"),  # above Python's int() digit limit
    ],
)
def test_amount_refuses(value: object, message: str) -> None:
    with pytest.raises(InvalidPayload, match=message.replace("(", r"\(")):
        Amount.parse(value)


def test_amount_positive_refuses_zero_and_names_the_field() -> None:
    with pytest.raises(InvalidPayload, match="max_fee_per_gas must be greater than zero"):
        Amount.parse("0", positive=True, what="max_fee_per_gas")
    assert Amount.parse("1", positive=True).value == 1


@pytest.mark.parametrize("value", [-1, 2**256, True, 1.0, "1"])
def test_amount_constructor_refuses(value: object) -> None:
    with pytest.raises(InvalidPayload):
        Amount(value)  # type: ignore[arg-type]


def test_invalid_payload_is_a_422_validation_failure() -> None:
    error = InvalidPayload("x")
    assert isinstance(error, ValidationFailed)
    assert error.status == 422


@pytest.mark.parametrize(
    "text", [CHECKSUMMED, CHECKSUMMED.lower(), "0x" + CHECKSUMMED[2:].upper(), "0x" + "1" * 40]
)
def test_address_accepts_single_case_and_valid_checksums(text: str) -> None:
    address = EvmAddress.parse(text)
    assert str(address) == (CHECKSUMMED if text[2:].lower() == CHECKSUMMED[2:].lower() else text)
    assert bytes(address) == bytes.fromhex(text[2:])


def test_address_with_wrong_checksum_is_refused_with_the_field_name() -> None:
    wrong = CHECKSUMMED[:-1] + "D"  # flip the case of the last letter
    with pytest.raises(InvalidPayload, match=f"destination {wrong} has a wrong EIP-55 checksum"):
        EvmAddress.parse(wrong, what="destination")


@pytest.mark.parametrize(
    "text",
    [
        CHECKSUMMED[:-1],  # short
        CHECKSUMMED + "a",  # long
        CHECKSUMMED[2:],  # no 0x
        "0X" + CHECKSUMMED[2:],
        "0x" + "g" * 40,  # not hex
        " " + CHECKSUMMED,
        CHECKSUMMED + "\n",
        "",
        None,
        12345,
        bytes(20),
    ],
)
def test_address_refuses_malformed(text: object) -> None:
    with pytest.raises(InvalidPayload, match="0x followed by 40 hex digits"):
        EvmAddress.parse(text)


def test_address_constructor_requires_20_bytes() -> None:
    with pytest.raises(InvalidPayload):
        EvmAddress(bytes(19))


def test_digest_forms() -> None:
    digest = Digest(bytes(range(32)))
    assert digest.hex() == bytes(range(32)).hex()
    assert digest.prefixed() == "0x" + digest.hex()
    assert Digest.from_hex(digest.prefixed()) == digest
    assert Digest.from_hex(digest.hex().upper()) == digest
    for bad in [bytes(31), bytes(33), "00" * 32]:
        with pytest.raises(InvalidPayload):
            Digest(bad)  # type: ignore[arg-type]
    for text in ["0x" + "0" * 63, "zz" * 32, 5]:
        with pytest.raises(InvalidPayload):
            Digest.from_hex(text)


@pytest.mark.parametrize("value", [0, -1, 2**64, True, "1"])
def test_chain_id_refuses(value: object) -> None:
    with pytest.raises(InvalidPayload):
        ChainId(value)  # type: ignore[arg-type]


def test_chain_id_accepts_the_range() -> None:
    assert ChainId(1).value == 1
    assert str(ChainId(2**64 - 1)) == str(2**64 - 1)


def test_values_are_frozen() -> None:
    amount = Amount(1)
    with pytest.raises(AttributeError):
        amount.value = 2  # type: ignore[misc]
