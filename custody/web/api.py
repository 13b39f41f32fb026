"""JSON endpoints behind the passkey buttons: options, then the browser's signed response.

Each ceremony is two calls. `options` stores a one-time challenge and returns WebAuthn options;
`verify` consumes that challenge and checks the browser's answer. An approval's challenge is
SHA-256 of the approval statement recomputed from the stored request at `verify` time, so an
assertion made for another request, digest, approver or decision never verifies.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from custody.approvals.duties import refuse_maker
from custody.approvals.service import ApprovalOutcome, record, statement_for
from custody.approvals.statement import webauthn_challenge
from custody.errors import ValidationFailed
from custody.http.deps import BodyDep
from custody.intake.jsonbody import parse_object
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.requests.states import RequestStatus
from custody.runtime import Runtime
from custody.settings import Settings
from custody.store.attempt import Attempt
from custody.store.base import utcnow
from custody.store.models import Approver, Request, WebauthnChallenge
from custody.web import passkeys, repository, sessions
from custody.web.deps import PostingUser, RuntimeDep
from custody.web.enrolment import valid_invite
from custody.web.errors import PasskeyRefused
from custody.web.sessions import SignedIn

router = APIRouter(prefix="/api", include_in_schema=False)
Decision = Annotated[str, Path(pattern="^(approve|reject)$")]
REQUEST_MOVED = "the request changed since the passkey prompt; reload and check it again"


def _json(body: bytes) -> dict[str, Any]:
    return parse_object(body) if body else {}


# -- enrolment --------------------------------------------------------------------------------


@router.post("/enrol/{token}/options")
def enrol_options(token: str, rt: RuntimeDep) -> dict[str, Any]:
    challenge = secrets.token_bytes(32)
    with rt.db.write() as session:
        invite, approver = valid_invite(session, token)
        challenge_id = passkeys.new_challenge(
            session,
            purpose="enrol",
            challenge=challenge,
            approver_id=approver.id,
            data={"invite": invite.token_hash},
        )
        existing = passkeys.credential_ids(session, approver.id)
        options = passkeys.registration_options(rt.settings, approver, challenge, existing)
    return {"challenge_id": challenge_id, "publicKey": options}


@router.post("/enrol/{token}/verify")
def enrol_verify(token: str, rt: RuntimeDep, body: BodyDep) -> dict[str, Any]:
    data = _json(body)
    with rt.db.write() as session:
        invite, approver = valid_invite(session, token, for_update=True)
        row = passkeys.take_challenge(session, data.get("challenge_id"), "enrol")
        if passkeys.challenge_data(row).get("invite") != invite.token_hash:
            raise PasskeyRefused("this passkey prompt belongs to another enrolment")
        credential = passkeys.register(
            session, rt.settings, approver, data.get("credential"), row.challenge
        )
        invite.used_at = utcnow()
        ledger.append(
            session,
            EventKind.APPROVER_PASSKEY_REGISTERED,
            f"approver:{approver.id}",
            {"id": approver.id, "name": approver.name, "credential_id": credential.id},
        )
    return {"redirect": "/app/login?enrolled=1"}


# -- sign-in ----------------------------------------------------------------------------------


@router.post("/login/options")
def login_options(rt: RuntimeDep) -> dict[str, Any]:
    challenge = secrets.token_bytes(32)
    with rt.db.write() as session:
        challenge_id = passkeys.new_challenge(session, purpose="login", challenge=challenge)
    # Discoverable passkeys: the authenticator offers the ones it holds for this site.
    return {
        "challenge_id": challenge_id,
        "publicKey": passkeys.authentication_options(rt.settings, challenge, []),
    }


@router.post("/login/verify")
def login_verify(rt: RuntimeDep, body: BodyDep) -> JSONResponse:
    data = _json(body)
    with rt.db.write() as session:
        row = passkeys.take_challenge(session, data.get("challenge_id"), "login")
    with rt.db.write() as session:
        credential = passkeys.assertion_credential(session, data.get("credential"))
        approver = session.get(Approver, credential.approver_id)
        if approver is None or approver.disabled_at is not None:
            raise PasskeyRefused("this approver is disabled")
        passkeys.verify_assertion(rt.settings, credential, data.get("credential"), row.challenge)
        token = sessions.start(
            session, approver_id=approver.id, minutes=rt.settings.session_minutes
        )
    response = JSONResponse({"redirect": "/app/"})
    _set_cookie(response, token, rt.settings)
    return response


def _set_cookie(response: JSONResponse, token: str, settings: Settings) -> None:
    response.set_cookie(
        sessions.COOKIE_NAME,
        token,
        max_age=settings.session_minutes * 60,
        path="/app",
        secure=settings.web_cookie_secure,
        httponly=True,
        samesite="strict",
    )


# -- approve / reject -------------------------------------------------------------------------


@router.post("/requests/{request_id}/{decision}/options")
def decision_options(
    request_id: str, decision: Decision, rt: RuntimeDep, user: PostingUser
) -> dict[str, Any]:
    with rt.db.write() as session:
        row = repository.visible(session, user, request_id)
        request = row.request
        if request.status != RequestStatus.PENDING_APPROVAL:
            raise ValidationFailed(f"request {request.id} is {request.status}, nothing to decide")
        refuse_maker(request, user.approver_id)
        approver = session.get(Approver, user.approver_id)
        assert approver is not None
        challenge = webauthn_challenge(statement_for(request, approver, decision))
        challenge_id = passkeys.new_challenge(
            session,
            purpose="approval",
            challenge=challenge,
            approver_id=approver.id,
            data={"request": request.id, "decision": decision, "digest": request.digest},
        )
        allowed = passkeys.credential_ids(session, approver.id)
    return {
        "challenge_id": challenge_id,
        "publicKey": passkeys.authentication_options(rt.settings, challenge, allowed),
    }


@router.post("/requests/{request_id}/{decision}/verify")
def decision_verify(
    request_id: str, decision: Decision, rt: RuntimeDep, user: PostingUser, body: BodyDep
) -> dict[str, Any]:
    data = _json(body)
    # One transaction. The prompt is used up whatever happens next, so the checks and the
    # recording run in a savepoint: a refusal undoes only them, and is raised once the used
    # prompt has committed (a refused assertion cannot be retried).
    attempt = Attempt()
    with rt.db.write() as session:
        # (1) use up the prompt
        row = passkeys.take_challenge(session, data.get("challenge_id"), "approval")
        with attempt.savepoint(session):
            # (2) verify the assertion over the statement as it stands now, and record it; a
            #     request past its deadline is expired instead, and the approval refused
            outcome = _verify_and_record(
                session, row, request_id=request_id, decision=decision, user=user, data=data, rt=rt
            )
    attempt.raise_refusal()
    outcome.raise_refusal()
    if outcome.status == RequestStatus.APPROVED:
        rt.notify_signer()
    return {"request": outcome.request_id, "status": outcome.status}


def _verify_and_record(
    session: Session,
    row: WebauthnChallenge,
    *,
    request_id: str,
    decision: Decision,
    user: SignedIn,
    data: dict[str, Any],
    rt: Runtime,
) -> ApprovalOutcome:
    issued = passkeys.challenge_data(row)
    if row.approver_id != user.approver_id or issued.get("request") != request_id:
        raise PasskeyRefused("this passkey prompt was for another approver or request")
    if issued.get("decision") != decision:
        raise PasskeyRefused(f"this passkey prompt was to {issued.get('decision')}, not {decision}")
    request = session.get(Request, request_id)
    approver = session.get(Approver, user.approver_id)
    assert request is not None
    assert approver is not None
    expected = webauthn_challenge(statement_for(request, approver, decision))
    if expected != row.challenge:
        raise PasskeyRefused(REQUEST_MOVED)
    credential = passkeys.assertion_credential(session, data.get("credential"))
    if credential.approver_id != approver.id:
        raise PasskeyRefused("this passkey belongs to someone else")
    passkeys.verify_assertion(rt.settings, credential, data.get("credential"), expected)
    return record(
        session,
        request_id=request_id,
        approver=approver,
        decision=decision,
        method="webauthn",
        evidence=passkeys.evidence(data.get("credential")),
        statement=statement_for(request, approver, decision),
    )
