"""Errors of the HSM layer, and the mapping from PKCS#11 return codes to them.

Messages name modules, tokens and key labels so an operator can act on them; they never contain a
PIN. The PKCS#11 codes below are fixed by the OASIS standard, so this module needs no PyKCS11.
"""

# Names follow custody.errors (NotFound, Conflict): a domain error reads better without "Error".

from __future__ import annotations

from custody.errors import Conflict, NotFound, Unavailable, ValidationFailed


class HsmError(Unavailable):
    """The HSM could not do what was asked; nothing was signed.

    `retryable`: the HSM may well do it later (the token went away, a session was lost, the
    device failed): a request waits for it instead of failing. The subclasses that are a
    definite answer (a malformed call, an unsupported mechanism, a bad signature) say False.
    """

    status = 503
    title = "HSM unavailable"
    slug = "hsm-unavailable"
    retryable = True


class HsmModuleNotFound(HsmError):
    slug = "hsm-module-not-found"
    title = "PKCS#11 module not found"


class TokenNotFound(HsmError):
    slug = "hsm-token-not-found"
    title = "HSM token not found"

    def __init__(self, token_label: str, detail: str = "") -> None:
        super().__init__(f"no HSM token labelled {token_label!r} is present{detail}")
        self.token_label = token_label


class TokenNotInitialised(HsmError):
    slug = "hsm-token-not-initialised"
    title = "HSM token not initialised"

    def __init__(self, token_label: str) -> None:
        super().__init__(
            f"HSM token {token_label!r} is not initialised (or has no user PIN); "
            "initialise it before use"
        )
        self.token_label = token_label


class PinIncorrect(HsmError):
    """Login refused. Takes no PIN argument on purpose, so no caller can leak one here.

    Retryable, as the request waits for the HSM; but nothing logs in again on its own after
    it (custody.hsm.holds): a real HSM locks its PIN after a few failures.
    """

    slug = "hsm-pin-incorrect"
    title = "HSM PIN incorrect"

    def __init__(self, token_label: str, reason: str = "the PIN is incorrect") -> None:
        super().__init__(
            f"login to HSM token {token_label!r} failed: {reason} "
            "(check CUSTODY_HSM_PIN or CUSTODY_HSM_PIN_FILE)"
        )
        self.token_label = token_label


class LoginHeld(HsmError):
    """Logins to the token are held after one was refused, until an operator re-arms them."""

    slug = "hsm-login-held"
    title = "HSM login held"

    def __init__(self, token_label: str, since: str) -> None:
        super().__init__(
            f"logins to HSM token {token_label!r} are held since {since}, when the token "
            "refused the PIN: fix CUSTODY_HSM_PIN or CUSTODY_HSM_PIN_FILE, then run "
            "`custody hsm rearm`"
        )
        self.token_label = token_label


class MechanismNotSupported(HsmError):
    slug = "hsm-mechanism-not-supported"
    title = "HSM mechanism not supported"
    retryable = False


class HsmSignatureInvalid(HsmError):
    """The token returned a signature that does not verify: never released, never retried."""

    slug = "hsm-signature-invalid"
    title = "HSM signature invalid"
    retryable = False


# Multiple inheritance lets callers that only know the generic errors (`except NotFound`) still
# catch these; the status is set explicitly because Unavailable comes first in the MRO.
class KeyNotFound(HsmError, NotFound):
    status = 404
    slug = "hsm-key-not-found"
    title = "Key not found"
    # Retryable: a token that went away answers "no such key" before anything else does; the
    # signer tells the two apart by recovering the token and asking again.

    def __init__(self, key_label: str) -> None:
        super().__init__(f"no key labelled {key_label!r} on the HSM token")
        self.key_label = key_label


class KeyExists(HsmError, Conflict):
    status = 409
    slug = "hsm-key-exists"
    title = "Key exists"
    retryable = False

    def __init__(self, key_label: str) -> None:
        super().__init__(f"a key labelled {key_label!r} already exists on the HSM token")
        self.key_label = key_label


class InvalidHsmRequest(HsmError, ValidationFailed):
    """The caller asked for something malformed (bad label, wrong digest length, wrong key type)."""

    status = 422
    slug = "hsm-invalid-request"
    title = "Invalid HSM request"
    retryable = False


# PKCS#11 return codes (OASIS PKCS#11 base specification, section "Return values").
CKR_SLOT_ID_INVALID = 0x003
CKR_DEVICE_REMOVED = 0x032
CKR_KEY_HANDLE_INVALID = 0x060
CKR_KEY_TYPE_INCONSISTENT = 0x063
CKR_MECHANISM_INVALID = 0x070
CKR_MECHANISM_PARAM_INVALID = 0x071
CKR_OBJECT_HANDLE_INVALID = 0x082
CKR_PIN_INCORRECT = 0x0A0
CKR_PIN_INVALID = 0x0A1
CKR_PIN_LEN_RANGE = 0x0A2
CKR_PIN_EXPIRED = 0x0A3
CKR_PIN_LOCKED = 0x0A4
CKR_TOKEN_NOT_PRESENT = 0x0E0
CKR_TOKEN_NOT_RECOGNIZED = 0x0E1
CKR_USER_PIN_NOT_INITIALIZED = 0x102
CKR_DOMAIN_PARAMS_INVALID = 0x130
CKR_CURVE_NOT_SUPPORTED = 0x140

HANDLE_INVALID_CODES = frozenset({CKR_KEY_HANDLE_INVALID, CKR_OBJECT_HANDLE_INVALID})

_PIN_REASONS = {
    CKR_PIN_INCORRECT: "the PIN is incorrect",
    CKR_PIN_INVALID: "the PIN is incorrect",
    CKR_PIN_LEN_RANGE: "the PIN has the wrong length",
    CKR_PIN_EXPIRED: "the PIN has expired",
    CKR_PIN_LOCKED: "the PIN is locked after too many failures",
}
_MECHANISM_CODES = frozenset(
    {
        CKR_MECHANISM_INVALID,
        CKR_MECHANISM_PARAM_INVALID,
        CKR_DOMAIN_PARAMS_INVALID,
        CKR_CURVE_NOT_SUPPORTED,
        CKR_KEY_TYPE_INCONSISTENT,
    }
)
_TOKEN_GONE_CODES = frozenset({CKR_TOKEN_NOT_PRESENT, CKR_DEVICE_REMOVED, CKR_SLOT_ID_INVALID})


def error_for_code(
    code: int,
    code_name: str,
    *,
    operation: str,
    token_label: str,
    key_label: str | None = None,
) -> HsmError:
    """The error a failed PKCS#11 call surfaces as; `code_name` is e.g. "CKR_PIN_INCORRECT"."""
    if code in _PIN_REASONS:
        return PinIncorrect(token_label, _PIN_REASONS[code])
    if code in _TOKEN_GONE_CODES:
        return TokenNotFound(token_label, f" ({operation} failed: {code_name})")
    if code in (CKR_USER_PIN_NOT_INITIALIZED, CKR_TOKEN_NOT_RECOGNIZED):
        return TokenNotInitialised(token_label)
    if code in HANDLE_INVALID_CODES and key_label is not None:
        return KeyNotFound(key_label)
    if code in _MECHANISM_CODES:
        return MechanismNotSupported(
            f"HSM token {token_label!r} does not support {operation}: {code_name}"
        )
    subject = f" for key {key_label!r}" if key_label is not None else ""
    return HsmError(f"HSM {operation}{subject} on token {token_label!r} failed: {code_name}")
