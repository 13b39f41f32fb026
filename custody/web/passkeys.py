"""WebAuthn ceremonies (py_webauthn) and their one-time challenges.

Three purposes: `enrol` (register a passkey from an invite), `login`, and `approval`, whose
challenge is SHA-256 of the approval statement rather than random bytes. Every challenge is
stored, expires after a few minutes and is consumed by its first use.

Anyone who reaches the server can ask for sign-in prompts, and anyone with an invite link for
enrolment prompts, so the table is kept small by whoever adds to it: each new prompt first
deletes the expired and used ones, then the oldest open ones beyond a bound for its kind. An
evicted prompt only fails as "unknown; try again", like an expired one.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.orm import Session
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_registration_response,
)
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from custody.approvals import assertions
from custody.settings import Settings
from custody.store.base import utcnow
from custody.store.models import Approver, WebauthnChallenge, WebauthnCredential
from custody.web.errors import PasskeyRefused

CHALLENGE_LIFETIME = timedelta(minutes=5)
TIMEOUT_MS = 120_000
RP_NAME = "custody approvals"
# Open prompts kept: sign-in ones belong to nobody yet, so they share one bound, far above the
# people of one installation signing in within a prompt's five minutes; the others count per
# approver and purpose (an approver with a few tabs open needs a few).
MAX_OPEN_LOGIN = 256
MAX_OPEN_PER_APPROVER = 10


def new_challenge(
    session: Session,
    *,
    purpose: str,
    challenge: bytes,
    approver_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> str:
    now = utcnow()
    _purge_spent(session, now)
    challenge_id = secrets.token_urlsafe(24)
    session.add(
        WebauthnChallenge(
            id=challenge_id,
            purpose=purpose,
            approver_id=approver_id,
            challenge=challenge,
            data=json.dumps(data or {}, sort_keys=True),
            expires_at=now + CHALLENGE_LIFETIME,
        )
    )
    session.flush()
    _evict_oldest(session, challenge_id, purpose, approver_id)
    return challenge_id


def _purge_spent(session: Session, now: datetime) -> None:
    """Expired and used prompts can never be taken again: nothing needs them any more."""
    session.execute(
        delete(WebauthnChallenge)
        .where(or_(WebauthnChallenge.expires_at <= now, WebauthnChallenge.used_at.is_not(None)))
        .execution_options(synchronize_session=False)
    )


def _evict_oldest(session: Session, keep: str, purpose: str, approver_id: str | None) -> None:
    """Keep `keep` and the newest others of its kind, up to the bound; delete the rest."""
    limit = MAX_OPEN_LOGIN if approver_id is None else MAX_OPEN_PER_APPROVER
    owner: ColumnElement[bool] = (
        WebauthnChallenge.approver_id.is_(None)
        if approver_id is None
        else WebauthnChallenge.approver_id == approver_id
    )
    scope = (WebauthnChallenge.purpose == purpose, owner, WebauthnChallenge.id != keep)
    newest = (
        select(WebauthnChallenge.id)
        .where(*scope)
        .order_by(WebauthnChallenge.expires_at.desc(), WebauthnChallenge.id.desc())
        .limit(limit - 1)
    )
    session.execute(
        delete(WebauthnChallenge)
        .where(*scope, WebauthnChallenge.id.not_in(newest.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )


def take_challenge(session: Session, challenge_id: object, purpose: str) -> WebauthnChallenge:
    """Consume a challenge: valid once, for its purpose, before it expires."""
    row = (
        session.execute(
            select(WebauthnChallenge).where(WebauthnChallenge.id == challenge_id).with_for_update()
        ).scalar_one_or_none()
        if isinstance(challenge_id, str) and len(challenge_id) <= 64
        else None
    )
    if row is None or row.purpose != purpose or row.used_at is not None:
        raise PasskeyRefused("this passkey prompt is unknown or was already used; try again")
    if row.expires_at <= utcnow():
        raise PasskeyRefused("this passkey prompt expired; try again")
    row.used_at = utcnow()
    return row


def challenge_data(row: WebauthnChallenge) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(row.data or "{}")
    return data


def registration_options(
    settings: Settings, approver: Approver, challenge: bytes, existing: list[str]
) -> dict[str, Any]:
    from webauthn.helpers import base64url_to_bytes

    options = generate_registration_options(
        rp_id=settings.web_rp_id,
        rp_name=RP_NAME,
        user_id=approver.id.encode(),
        user_name=approver.name,
        user_display_name=approver.name,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(c)) for c in existing
        ],
    )
    parsed: dict[str, Any] = json.loads(options_to_json(options))
    return parsed


def register(
    session: Session, settings: Settings, approver: Approver, credential: object, challenge: bytes
) -> WebauthnCredential:
    """Verify a registration response and store the passkey's public key."""
    try:
        verified = verify_registration_response(
            credential=_as_dict(credential),
            expected_challenge=challenge,
            expected_rp_id=settings.web_rp_id,
            expected_origin=settings.public_url,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError):
        raise PasskeyRefused("the new passkey could not be verified") from None
    credential_id = bytes_to_base64url(verified.credential_id)
    if session.get(WebauthnCredential, credential_id) is not None:
        raise PasskeyRefused("this passkey is already registered")
    transports = _as_dict(credential).get("response", {}).get("transports")
    row = WebauthnCredential(
        id=credential_id,
        approver_id=approver.id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=json.dumps(transports) if isinstance(transports, list) else None,
        created_at=utcnow(),
    )
    session.add(row)
    return row


def authentication_options(
    settings: Settings, challenge: bytes, credential_ids: list[str]
) -> dict[str, Any]:
    from webauthn.helpers import base64url_to_bytes

    options = generate_authentication_options(
        rp_id=settings.web_rp_id,
        challenge=challenge,
        timeout=TIMEOUT_MS,
        allow_credentials=[
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(c)) for c in credential_ids
        ],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    parsed: dict[str, Any] = json.loads(options_to_json(options))
    return parsed


def credential_ids(session: Session, approver_id: str) -> list[str]:
    return list(
        session.execute(
            select(WebauthnCredential.id)
            .where(WebauthnCredential.approver_id == approver_id)
            .order_by(WebauthnCredential.created_at)
        ).scalars()
    )


def assertion_credential(session: Session, credential: object) -> WebauthnCredential:
    """The registered passkey an assertion claims to come from."""
    credential_id = _as_dict(credential).get("id")
    row = (
        session.get(WebauthnCredential, credential_id, with_for_update=True)
        if isinstance(credential_id, str) and len(credential_id) <= 512
        else None
    )
    if row is None:
        raise PasskeyRefused("this passkey is not registered here")
    return row


def verify_assertion(
    settings: Settings, row: WebauthnCredential, credential: object, challenge: bytes
) -> None:
    """Check an assertion by `row`'s key over `challenge`; the sign count must grow."""
    try:
        row.sign_count = assertions.verify_assertion(
            settings.relying_party,
            _as_dict(credential),
            public_key=row.public_key,
            challenge=challenge,
            sign_count=row.sign_count,
        )
    except assertions.AssertionRefused:
        raise PasskeyRefused(
            "the passkey's signature does not verify for this exact request and decision"
        ) from None


def evidence(credential: object) -> dict[str, str]:
    """The assertion parts an auditor needs to re-verify an approval offline (base64url)."""
    return assertions.evidence(_as_dict(credential))


def _as_dict(credential: object) -> dict[str, Any]:
    if not isinstance(credential, dict) or not isinstance(credential.get("response"), dict):
        raise PasskeyRefused("the browser sent no passkey response")
    return credential
