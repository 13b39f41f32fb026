"""The pages: queue, request detail, history, new withdrawal (maker), sign-in, enrolment."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from custody.approvals.duties import NOT_A_MAKER
from custody.approvals.errors import MakerRefused
from custody.runtime import Runtime
from custody.web import detail, maker, repository, sessions
from custody.web.deps import FormDep, MaybeUser, RuntimeDep, UserDep
from custody.web.enrolment import valid_invite
from custody.web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def queue(request: Request, rt: RuntimeDep, user: UserDep) -> Response:
    with rt.db.read() as session:
        items = [detail.queue_item(session, row) for row in repository.queue(session, user)]
        return render(request, "queue.html", {"items": items, "tab": "queue"}, user=user)


@router.get("/requests/{request_id}", response_class=HTMLResponse)
def request_detail(request: Request, request_id: str, rt: RuntimeDep, user: UserDep) -> Response:
    with rt.db.read() as session:
        row = repository.visible(session, user, request_id)
        shown = detail.build(session, row, user)
        return render(request, "detail.html", {"d": shown, "tab": "queue"}, user=user)


@router.get("/history", response_class=HTMLResponse)
def history(request: Request, rt: RuntimeDep, user: UserDep) -> Response:
    with rt.db.read() as session:
        rows = repository.history(session, user)
        return render(request, "history.html", {"rows": rows, "tab": "history"}, user=user)


@router.get("/new", response_class=HTMLResponse)
def new_withdrawal(request: Request, rt: RuntimeDep, user: UserDep) -> Response:
    if not user.maker:
        raise MakerRefused(NOT_A_MAKER)
    with rt.db.read() as session:
        choices = maker.wallets(session)
    context = {"wallets": choices, "form_key": secrets.token_urlsafe(16), "tab": "new"}
    return render(request, "new.html", context, user=user)


@router.post("/new")
def start_withdrawal(rt: RuntimeDep, user: UserDep, form: FormDep) -> Response:
    sessions.require_csrf(user, form.get("csrf_token"))
    key = form.get("form_key", "")
    if not key or len(key) > 64:
        key = secrets.token_urlsafe(16)
    submission = maker.start_withdrawal(
        rt.db,
        approver_id=user.approver_id,
        form=form,
        idempotency_key=key,
        max_fee_wei=rt.settings.max_tx_fee_wei,
        key=app_key(rt),
    )
    if submission.view["status"] == "approved":
        rt.notify_signer()
    return RedirectResponse(f"/app/requests/{submission.view['id']}", status_code=303)


def app_key(rt: Runtime) -> maker.AppKey:
    label = rt.settings.app_key_label
    token = rt.token()
    return maker.AppKey(
        token.get_key(label).public_key, lambda message: token.sign_ed25519(label, message)
    )


@router.get("/login", response_class=HTMLResponse)
def login(request: Request, user: MaybeUser, enrolled: int = 0) -> Response:
    if user is not None:
        return RedirectResponse("/app/", status_code=303)
    return render(request, "login.html", {"enrolled": bool(enrolled)}, user=None)


@router.get("/logout", response_class=HTMLResponse)
def logout_page(request: Request, user: UserDep) -> Response:
    return render(request, "logout.html", {}, user=user)


@router.post("/logout")
def logout(request: Request, rt: RuntimeDep, user: UserDep, form: FormDep) -> Response:
    sessions.require_csrf(user, form.get("csrf_token"))
    with rt.db.write() as session:
        sessions.end(session, request.cookies.get(sessions.COOKIE_NAME))
    response = RedirectResponse("/app/login", status_code=303)
    response.delete_cookie(sessions.COOKIE_NAME, path="/app")
    return response


@router.get("/enrol/{token}", response_class=HTMLResponse)
def enrol(request: Request, token: str, rt: RuntimeDep) -> Response:
    with rt.db.read() as session:
        _invite, approver = valid_invite(session, token)
        return render(request, "enrol.html", {"name": approver.name, "token": token}, user=None)
