"""Passkey (WebAuthn) assertions over approval statements: the check, and what of it is kept.

Two callers verify the same way: the approver app when an approval is given (custody.web), and
the signer when it re-verifies the stored approval before it counts (custody.approvals.evidence).
What is kept of an assertion (the evidence) is what an auditor needs to verify it offline: the
credential id, authenticator data, client data and signature, base64url as the browser sent them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from custody.settings import RelyingParty

EVIDENCE_FIELDS = ("credential_id", "authenticator_data", "client_data_json", "signature")


class AssertionRefused(Exception):
    """The assertion does not verify; the message says which check failed (py_webauthn's)."""


def verify_assertion(
    relying_party: RelyingParty,
    credential: Mapping[str, Any],
    *,
    public_key: bytes,
    challenge: bytes,
    sign_count: int,
) -> int:
    """Check an assertion (the browser's JSON) by the passkey whose COSE key is `public_key`,
    made for `challenge` on this relying party with the user verified, and with a sign count
    above `sign_count` unless both are 0. Returns the new sign count; raises AssertionRefused."""
    # Imported here: every signer worker loads this module at start (about 0.1 s more for
    # py_webauthn), and needs it only once a passkey approval is to be counted.
    from webauthn import verify_authentication_response
    from webauthn.helpers.exceptions import WebAuthnException

    try:
        verified = verify_authentication_response(
            credential=dict(credential),
            expected_challenge=challenge,
            expected_rp_id=relying_party.id,
            expected_origin=relying_party.origin,
            credential_public_key=public_key,
            credential_current_sign_count=sign_count,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise AssertionRefused(str(exc) or type(exc).__name__) from None
    return verified.new_sign_count


def evidence(credential: Mapping[str, Any]) -> dict[str, str]:
    """The parts of an assertion that are kept with the approval (base64url)."""
    response = credential.get("response", {})
    return {
        "credential_id": str(credential.get("id")),
        "authenticator_data": str(response.get("authenticatorData")),
        "client_data_json": str(response.get("clientDataJSON")),
        "signature": str(response.get("signature")),
    }


def credential(evidence: Mapping[str, str]) -> dict[str, Any]:
    """The assertion again, in the browser's JSON form, from what `evidence` kept.

    The kept credential id stands for `rawId` too: it was the browser's `id`, which py_webauthn
    checked was exactly the base64url of `rawId` when the approval was given.
    """
    return {
        "id": evidence["credential_id"],
        "rawId": evidence["credential_id"],
        "type": "public-key",
        "response": {
            "authenticatorData": evidence["authenticator_data"],
            "clientDataJSON": evidence["client_data_json"],
            "signature": evidence["signature"],
        },
    }
