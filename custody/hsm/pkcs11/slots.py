"""Finding a token's slot by its label: exactly one initialised token may carry it."""

from __future__ import annotations

import PyKCS11

from custody.hsm.errors import TokenNotFound, TokenNotInitialised
from custody.hsm.pkcs11.library import Library


def find_slot(library: Library, token_label: str) -> int:
    """The slot of the token labelled `token_label`; call it holding `library.lock`.

    The same rules as Pkcs11Token's own lookup: a label two tokens share names neither, and a
    token without a user PIN is not ready for use.
    """
    matches = []
    for slot in library.pykcs11.getSlotList(tokenPresent=True):
        info = library.pykcs11.getTokenInfo(slot)
        if info.label.rstrip(" \x00") == token_label:
            matches.append((slot, info.flags))
    if not matches:
        raise TokenNotFound(token_label)
    if len(matches) > 1:
        raise TokenNotFound(token_label, " exactly once: several tokens share it")
    slot, flags = matches[0]
    if not flags & PyKCS11.CKF_TOKEN_INITIALIZED or not flags & PyKCS11.CKF_USER_PIN_INITIALIZED:
        raise TokenNotInitialised(token_label)
    return int(slot)
