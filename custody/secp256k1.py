"""The secp256k1 group order and the one low-s rule every signing path applies.

ECDSA signatures are malleable: (r, s) and (r, n - s) both verify. Ethereum (EIP-2), Bitcoin
relay policy and most contracts accept only the low half, so the HSM adapter, the transaction
assembler and the typed-data verifier all ask this module rather than compare with n // 2 each.
It depends on nothing, so the HSM layer can use it without importing chain code.
"""

from __future__ import annotations

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
HALF_N = N // 2


def in_range(scalar: int) -> bool:
    """1 <= scalar < n: what r and s of any valid signature satisfy."""
    return 0 < scalar < N


def is_low_s(s: int) -> bool:
    """1 <= s <= n // 2: the only s Ethereum and Bitcoin relay accept."""
    return 0 < s <= HALF_N


def low_s(s: int) -> int:
    """s itself or n - s, whichever is in the low half."""
    return N - s if s > HALF_N else s


def to_low_s(r: int, s: int, recovery_id: int) -> tuple[int, int, int]:
    """The low-s twin of (r, s): (r, n - s) signs the same digest with the other y-parity."""
    if s > HALF_N:
        return r, low_s(s), recovery_id ^ 1
    return r, s, recovery_id
