"""The maker side: a person starts a withdrawal in the app, which never lets them approve it.

Only approvers in a group granted `maker` may (`custody.approvals.duties`): the check runs in the
transaction that stores the request, so a permission revoked a moment ago already holds.

Requests made here go through the same intake pipeline as the API's, as an internal client
(`approver-app`) whose key is in the HSM: the app signs each request's call with it, naming the
maker (custody.clients.tokens), and the signer checks that token like any client's. The client
cannot call the API. The person is recorded in `requested_by_approver`, which the approval
service refuses as a checker of that request (invariant 6).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from custody import callid
from custody.approvals.duties import refuse_unless_maker
from custody.clients.auth import AuthenticatedClient
from custody.clients.service import (
    INTERNAL_CLIENT,
    ensure_internal_client,
    internal_client_pem,
)
from custody.clients.tokens import maker_token
from custody.errors import ValidationFailed
from custody.intake.pipeline import Submission, submit
from custody.store.database import Database
from custody.store.models import NONCE_HELD, Chain, Client, Request, Wallet

APP_CLIENT = INTERNAL_CLIENT
_GWEI = 10**9
# [0-9], never \d or str.isdigit(): those accept Arabic-Indic, full-width or superscript digits,
# which int() and Decimal() would either read as other numbers or refuse with a ValueError.
_UNITS = re.compile(r"[0-9]{1,30}(\.[0-9]{1,30})?")
_WHOLE = re.compile(r"[0-9]{1,30}")


@dataclass(frozen=True)
class WalletChoice:
    name: str
    address: str
    chain: str
    asset: str
    decimals: int
    next_nonce: int | None
    """None on a connected chain: intake picks the nonce (and fees the form leaves blank)."""


def wallets(session: Session) -> list[WalletChoice]:
    rows = session.execute(
        select(Wallet, Chain).join(Chain, Chain.id == Wallet.chain_id).order_by(Wallet.name)
    ).all()
    return [
        WalletChoice(
            w.name,
            w.address,
            c.name,
            c.native_asset,
            c.native_decimals,
            None if c.rpc_url is not None else next_nonce(session, w.id),
        )
        for w, c in rows
    ]


def next_nonce(session: Session, wallet_id: int) -> int:
    highest = session.execute(
        select(func.max(Request.evm_nonce)).where(Request.wallet_id == wallet_id, NONCE_HELD)
    ).scalar_one()
    return 0 if highest is None else int(highest) + 1


@dataclass(frozen=True)
class AppKey:
    """The approver app's key in the HSM: its public half, and a way to sign with it."""

    public_key: bytes
    sign: Callable[[bytes], bytes]


def app_client(db: Database, key: AppKey) -> AuthenticatedClient:
    """The approver app's internal client, holding the app's HSM key: made (or re-keyed, for an
    installation that made it with a throwaway key) in a transaction of its own."""
    with db.read() as session:
        client = _find_app_client(session)
    if client is not None and client.public_key_pem.encode() == internal_client_pem(key.public_key):
        return AuthenticatedClient(id=client.id, name=client.name, role=client.role)
    try:
        with db.write() as session:
            row = ensure_internal_client(session, public_key=key.public_key, actor="web")
            return AuthenticatedClient(id=row.id, name=row.name, role=row.role)
    except IntegrityError:
        # A concurrent first use won the unique name (PostgreSQL): theirs is the one.
        with db.read() as session:
            client = _find_app_client(session)
        if client is None:
            raise
        return AuthenticatedClient(id=client.id, name=client.name, role=client.role)


def _find_app_client(session: Session) -> Client | None:
    return session.execute(select(Client).where(Client.name == APP_CLIENT)).scalar_one_or_none()


def base_units(units: str, decimals: int) -> int:
    """Exact conversion of a decimal amount in units (e.g. "1.5") to base units."""
    text = units.strip()
    if not _UNITS.fullmatch(text):
        raise ValidationFailed("amount must be a plain decimal number such as 1.5 (digits 0-9)")
    try:
        value = Decimal(text) * (Decimal(10) ** decimals)
    except InvalidOperation:
        raise ValidationFailed("amount is not a number") from None
    if value != value.to_integral_value() or value <= 0:
        raise ValidationFailed(f"amount must be positive with at most {decimals} decimals")
    return int(value)


def withdrawal_body(form: dict[str, str], choice: WalletChoice) -> bytes:
    def integer(name: str) -> int:
        raw = form.get(name, "").strip()
        if not _WHOLE.fullmatch(raw):
            raise ValidationFailed(f"{name.replace('_', ' ')} must be a whole number (digits 0-9)")
        return int(raw)

    def given(name: str) -> bool:
        # On a connected chain a blank field is custody's to fill (nonce, gas, fees).
        return choice.next_nonce is not None or bool(form.get(name, "").strip())

    evm: dict[str, object] = {}
    if given("nonce"):
        evm["nonce"] = integer("nonce")
    if given("gas"):
        evm["gas"] = integer("gas")
    if given("max_fee_gwei"):
        evm["max_fee_per_gas"] = str(integer("max_fee_gwei") * _GWEI)
    if given("priority_fee_gwei"):
        evm["max_priority_fee_per_gas"] = str(integer("priority_fee_gwei") * _GWEI)
    body = {
        "type": "withdrawal",
        "wallet": choice.name,
        "asset": choice.asset,
        "amount": str(base_units(form.get("amount", ""), choice.decimals)),
        "destination": form.get("destination", "").strip(),
        **({"evm": evm} if evm else {}),
    }
    return json.dumps(body).encode()


def start_withdrawal(
    db: Database,
    *,
    approver_id: str,
    form: dict[str, str],
    idempotency_key: str,
    max_fee_wei: int,
    key: AppKey,
) -> Submission:
    """Through the intake pipeline, which decodes before its write transaction; the maker
    permission is checked first here and again in the transaction that stores the request."""
    with db.read() as session:
        refuse_unless_maker(session, approver_id)
        by_name = {w.name: w for w in wallets(session)}
    choice = by_name.get(form.get("wallet", ""))
    if choice is None:
        raise ValidationFailed("choose a wallet")
    body, request_key = withdrawal_body(form, choice), f"{approver_id}:{idempotency_key}"
    client = app_client(db, key)
    # Signed as a client signs its call, before any transaction: the signer checks this token,
    # the body and the maker.
    token = maker_token(
        client_id=client.id,
        body=body,
        idempotency_key=request_key,
        maker=approver_id,
        sign=key.sign,
    )
    submission = submit(
        db,
        client=dataclasses.replace(client, token=token),
        idempotency_key=request_key,
        body=body,
        max_fee_wei=max_fee_wei,
        requested_by_approver=approver_id,
        authorise=lambda session: refuse_unless_maker(session, approver_id),
        http_request_id=callid.current(),
    )
    if submission.replayed:
        # Only a replay can be someone else's request: a new one was made by this approver.
        with db.read() as session:
            request = session.get(Request, submission.view["id"])
            made_by = request.requested_by_approver if request is not None else None
        if made_by != approver_id:
            raise ValidationFailed("this form was already used by someone else")
    return submission
