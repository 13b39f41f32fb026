"""The ceremony's key-encryption key (KEK): made, split into SLIP-39 shares, rebuilt, checked.

The KEK is 32 random bytes (AES-256) that exist in this process's memory only for the length of
a ceremony; Python cannot promise to wipe them afterwards, so ceremonies run on a machine the
custodians trust. It is split with SLIP-39 (the `shamir-mnemonic` package, the Trezor reference
implementation): one group, M of N member shares, an empty passphrase. Each share carries an
RS1024 checksum (a mistyped word is caught), the backup's 15-bit identifier (a share of another
backup is caught), and with M >= 2 a digest of the secret (a wrong but well-formed share is caught).

Two values derived from the KEK go in the manifest, computed in software:
- the check value: the first 5 bytes of AES-CMAC over one zero block (the AES key check value
  of ANSI X9.24-1), which tells "these shares belong to another KEK" apart from an edit;
- the manifest's authentication code: HMAC-SHA256 under a key derived from the KEK with HKDF, so
  restoring proves that nothing in the manifest changed since the backup.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import shamir_mnemonic
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from custody.ceremonies.errors import CeremonyRefused, SharesInvalid

KEK_BYTES = 32
MAX_SHARES = 16  # SLIP-39 encodes member counts in 4 bits
# SLIP-39 stretches the passphrase with PBKDF2 (10000 * 2**e rounds). With an empty passphrase
# this protects nothing, so the lowest exponent keeps restores quick.
ITERATION_EXPONENT = 0
CHECK_METHOD = "aes-cmac-zero-block-40"
_MAC_INFO = b"custody.backup.v1 manifest mac"


@dataclass(frozen=True)
class Split:
    identifier: int  # SLIP-39's random 15-bit identifier, the same in every share
    shares: list[str]  # share number i + 1 is shares[i]: 33 words each for a 256-bit KEK

    def __repr__(self) -> str:  # never show the words
        return f"Split(identifier={self.identifier}, {len(self.shares)} shares)"


def check_counts(shares: int, threshold: int) -> None:
    """1 <= M <= N <= 16, and M = 1 only for a single share (SLIP-39 allows no 1-of-N)."""
    if not 1 <= shares <= MAX_SHARES:
        raise CeremonyRefused(f"--shares must be between 1 and {MAX_SHARES}, got {shares}")
    if not 1 <= threshold <= shares:
        raise CeremonyRefused(
            f"--threshold must be between 1 and --shares ({shares}), got {threshold}"
        )
    if threshold == 1 and shares > 1:
        raise CeremonyRefused(
            "--threshold 1 with several shares would let any one custodian restore alone "
            "(SLIP-39 refuses it): use a threshold of 2 or more, or a single share"
        )


def new_kek() -> bytes:
    return secrets.token_bytes(KEK_BYTES)


def split(kek: bytes, *, shares: int, threshold: int) -> Split:
    check_counts(shares, threshold)
    (group,) = shamir_mnemonic.generate_mnemonics(
        1,
        [(threshold, shares)],
        kek,
        passphrase=b"",
        extendable=True,
        iteration_exponent=ITERATION_EXPONENT,
    )
    identifier = shamir_mnemonic.Share.from_mnemonic(group[0]).identifier
    return Split(identifier=int(identifier), shares=[str(words) for words in group])


@dataclass(frozen=True)
class ShareInfo:
    """What a share says about itself: the backup it belongs to and its number (1..N)."""

    identifier: int
    number: int
    threshold: int


def read_share(text: str, position: int) -> ShareInfo:
    """Parse one share (checksum included); `position` (1-based) names it in errors."""
    words = " ".join(text.lower().split())
    try:
        share = shamir_mnemonic.Share.from_mnemonic(words)
    except (shamir_mnemonic.MnemonicError, ValueError, KeyError):
        # The library's messages quote words of the share: say what is wrong without them.
        raise SharesInvalid(
            f"share {position} is not a valid SLIP-39 share: a word is misspelt, missing or "
            "out of order (its checksum fails)"
        ) from None
    if share.group_count != 1 or share.group_threshold != 1:
        raise SharesInvalid(f"share {position} belongs to a multi-group SLIP-39 backup")
    return ShareInfo(
        identifier=int(share.identifier),
        number=int(share.index) + 1,
        threshold=int(share.member_threshold),
    )


def combine(texts: list[str], *, identifier: int, threshold: int) -> tuple[bytes, list[int]]:
    """The KEK from exactly `threshold` shares of the backup `identifier`, and the numbers of
    the shares that rebuilt it (which custodians took part: not secret)."""
    infos = [read_share(text, position) for position, text in enumerate(texts, start=1)]
    for position, info in enumerate(infos, start=1):
        if info.identifier != identifier:
            raise SharesInvalid(
                f"share {position} belongs to another backup (SLIP-39 identifier "
                f"{info.identifier}, this backup's is {identifier})"
            )
    numbers = [info.number for info in infos]
    if len(set(numbers)) != len(numbers):
        raise SharesInvalid("the same share was given twice: each custodian's share counts once")
    if len(infos) != threshold:
        raise SharesInvalid(
            f"this backup needs {threshold} shares (any {threshold} of its custodians), "
            f"{len(infos)} were given"
        )
    try:
        kek = shamir_mnemonic.combine_mnemonics([" ".join(t.lower().split()) for t in texts])
    except (shamir_mnemonic.MnemonicError, ValueError):
        raise SharesInvalid(
            "the shares do not fit together: at least one of them is not the share its "
            "custodian received (its digest check fails)"
        ) from None
    if len(kek) != KEK_BYTES:
        raise SharesInvalid(f"the shares hold a {len(kek)}-byte secret, not a {KEK_BYTES}-byte KEK")
    return bytes(kek), sorted(numbers)


def check_value(kek: bytes) -> str:
    mac = CMAC(algorithms.AES(kek))
    mac.update(bytes(16))
    return mac.finalize()[:5].hex()


def manifest_mac(kek: bytes, canonical: bytes) -> str:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_MAC_INFO).derive(kek)
    return hmac.new(key, canonical, hashlib.sha256).hexdigest()
