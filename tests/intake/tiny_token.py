"""A minimal ERC-20 (transfer and balanceOf only), hand-assembled so no compiler is needed.

Balances live at storage slot = holder address (no hashing: nothing else is stored). The
constructor credits the whole supply to one holder. `transfer` reverts on insufficient balance
and returns true; it emits no event, which the tests do not need.
"""

from __future__ import annotations

OPS = {
    "STOP": 0x00,
    "ADD": 0x01,
    "SUB": 0x03,
    "LT": 0x10,
    "EQ": 0x14,
    "SHR": 0x1C,
    "CALLER": 0x33,
    "CALLDATALOAD": 0x35,
    "CODECOPY": 0x39,
    "MSTORE": 0x52,
    "SLOAD": 0x54,
    "SSTORE": 0x55,
    "JUMPI": 0x57,
    "JUMPDEST": 0x5B,
    "DUP1": 0x80,
    "DUP2": 0x81,
    "DUP3": 0x82,
    "SWAP1": 0x90,
    "RETURN": 0xF3,
    "REVERT": 0xFD,
}

Item = str | tuple[str, int | bytes | str]


def assemble(program: list[Item]) -> bytes:
    """Ops by name, ("PUSHn", value), ("LABEL", name) and ("JUMPTO", name) as PUSH2 + target."""
    size = 0
    labels: dict[str, int] = {}
    for item in program:  # first pass: where each label lands
        if isinstance(item, str):
            size += 1
        elif item[0] == "LABEL":
            labels[str(item[1])] = size
            size += 1  # the JUMPDEST
        elif item[0] == "JUMPTO":
            size += 3
        else:
            size += 1 + int(item[0][4:])
    code = bytearray()
    for item in program:
        if isinstance(item, str):
            code.append(OPS[item])
        elif item[0] == "LABEL":
            code.append(OPS["JUMPDEST"])
        elif item[0] == "JUMPTO":
            code += bytes([0x61]) + labels[str(item[1])].to_bytes(2, "big")
        else:
            width = int(item[0][4:])
            value = item[1]
            raw = value if isinstance(value, bytes) else int(value).to_bytes(width, "big")
            code += bytes([0x5F + width]) + raw.rjust(width, b"\x00")
    return bytes(code)


RUNTIME = assemble(
    [
        ("PUSH1", 0),
        "CALLDATALOAD",
        ("PUSH1", 0xE0),
        "SHR",
        "DUP1",
        ("PUSH4", 0xA9059CBB),
        "EQ",
        ("JUMPTO", "transfer"),
        "JUMPI",
        "DUP1",
        ("PUSH4", 0x70A08231),
        "EQ",
        ("JUMPTO", "balance"),
        "JUMPI",
        ("LABEL", "fail"),
        ("PUSH1", 0),
        "DUP1",
        "REVERT",
        ("LABEL", "transfer"),
        "CALLER",
        "SLOAD",  # from_balance
        ("PUSH1", 0x24),
        "CALLDATALOAD",  # amount, from_balance
        "DUP2",
        "DUP2",
        "SWAP1",
        "LT",  # from_balance < amount, amount, from_balance
        ("JUMPTO", "fail"),
        "JUMPI",
        "DUP1",
        "DUP3",
        "SUB",
        "CALLER",
        "SSTORE",  # balance[caller] = from_balance - amount
        ("PUSH1", 0x04),
        "CALLDATALOAD",  # to, amount, from_balance
        "DUP1",
        "SLOAD",
        "DUP3",
        "ADD",  # to_balance + amount, to, amount, from_balance
        "SWAP1",
        "SSTORE",  # balance[to] = to_balance + amount
        ("PUSH1", 1),
        ("PUSH1", 0),
        "MSTORE",
        ("PUSH1", 0x20),
        ("PUSH1", 0),
        "RETURN",
        ("LABEL", "balance"),
        ("PUSH1", 0x04),
        "CALLDATALOAD",
        "SLOAD",
        ("PUSH1", 0),
        "MSTORE",
        ("PUSH1", 0x20),
        ("PUSH1", 0),
        "RETURN",
    ]
)


def init_code(holder: str, supply: int) -> bytes:
    """Constructor: balance[holder] = supply, then return RUNTIME as the contract's code."""
    prefix_len = 1 + 32 + 1 + 20 + 1 + 3 + 1 + 3 + 2 + 1 + 2 + 1
    prologue = assemble(
        [
            ("PUSH32", supply),
            ("PUSH20", bytes.fromhex(holder[2:])),
            "SSTORE",
            ("PUSH2", len(RUNTIME)),
            "DUP1",
            ("PUSH2", prefix_len),
            ("PUSH1", 0),
            "CODECOPY",
            ("PUSH1", 0),
            "RETURN",
        ]
    )
    assert len(prologue) == prefix_len
    return prologue + RUNTIME
