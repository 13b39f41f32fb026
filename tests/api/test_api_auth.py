"""Every way a call can fail authentication answers 401 problem+json and changes nothing."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import jwt
import pytest
from api_checks import assert_problem
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy.orm import Session

from custody.store.base import utcnow
from custody.store.models import Client
from tests.support.api import Api, make_token, withdrawal
from tests.support.installation import ClientKeys, Installation, WalletInfo

URI = "/v1/requests"


@pytest.fixture(scope="module")
def auth_wallet(installation: Installation) -> WalletInfo:
    return installation.wallet()


@pytest.fixture
def body(auth_wallet: WalletInfo) -> bytes:
    # A fresh nonce each time: were authentication skipped, this body would create a request.
    return json.dumps(withdrawal(auth_wallet.name, nonce=int(uuid.uuid4().int % 10**9))).encode()


def _key(body: bytes) -> str:
    """The Idempotency-Key these tests send with `body` (and sign, unless a test says otherwise)."""
    return "auth-" + hashlib.sha256(body).hexdigest()[:32]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(client: ClientKeys, body: bytes, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": client.id,
        "uri": URI,
        "method": "POST",
        "bodyHash": hashlib.sha256(body).hexdigest(),
        "nonce": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 30,
        "idempotencyKey": _key(body),
    }
    claims.update(overrides)
    return claims


def _unsigned_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = _b64(json.dumps(header).encode())
    payload = _b64(json.dumps(claims).encode())
    return f"{head}.{payload}.{_b64(signature)}"


def _post(api: Api, body: bytes, authorization: str | None, uri: str = URI):
    headers = {"Content-Type": "application/json", "Idempotency-Key": _key(body)}
    if authorization is not None:
        headers["Authorization"] = authorization
    return api.send("POST", uri, content=body, headers=headers)


def _refused(
    api: Api,
    installation: Installation,
    body: bytes,
    authorization: str | None,
    detail: str | None = None,
    uri: str = URI,
) -> dict[str, Any]:
    before = installation.counts()
    response = _post(api, body, authorization, uri)
    problem = assert_problem(response, 401, detail)
    assert response.headers.get("www-authenticate", "").lower().startswith("bearer")
    assert installation.counts() == before
    return problem


# -- the header itself --------------------------------------------------------------------------


def test_missing_authorization_header(api: Api, installation: Installation, body: bytes) -> None:
    _refused(api, installation, body, None, "missing Authorization")


@pytest.mark.parametrize(
    "scheme", ["Basic dXNlcjpwYXNz", "Token {token}", "Bearer", "Bearer    ", "{token}"]
)
def test_authorization_that_is_not_bearer(
    api: Api, installation: Installation, body: bytes, scheme: str
) -> None:
    token = make_token(api.client, "POST", URI, body, idempotency_key=_key(body))
    _refused(api, installation, body, scheme.format(token=token))


@pytest.mark.parametrize(
    "garbage", ["abc", "not.a.jwt", "a.b.c.d", "eyJhbGciOiJFZERTQSJ9..", "Zm9v.YmFy.YmF6"]
)
def test_garbage_token(api: Api, installation: Installation, body: bytes, garbage: str) -> None:
    _refused(api, installation, body, f"Bearer {garbage}")


# -- replay --------------------------------------------------------------------------------------


def test_replayed_token_is_refused(api: Api, installation: Installation, body: bytes) -> None:
    token = make_token(api.client, "POST", URI, body, idempotency_key=_key(body))
    first = _post(api, body, f"Bearer {token}")
    assert first.status_code == 201, first.text
    _refused(api, installation, body, f"Bearer {token}", "already used")


def test_reused_nonce_in_a_new_token_is_refused(
    api: Api, installation: Installation, body: bytes
) -> None:
    nonce = uuid.uuid4().hex
    probe = f"{URI}/req_{'0' * 24}"
    first = api.call("GET", probe, token=make_token(api.client, "GET", probe, nonce=nonce))
    assert_problem(first, 404)  # authenticated, then not found: the nonce is now used
    token = make_token(
        api.client,
        "POST",
        URI,
        body,
        idempotency_key=_key(body),
        nonce=nonce,
        now=int(time.time()) + 1,
    )
    _refused(api, installation, body, f"Bearer {token}", "already used")


def test_a_create_commits_its_nonce_with_its_request(
    api: Api, installation: Installation, body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One write transaction per create: the nonce is burnt in intake's own, not in one of its
    own before it (each commit is a disk flush and, on SQLite, a turn at the write lock)."""
    db = installation.runtime.db
    write = db.write
    writes: list[None] = []

    @contextlib.contextmanager
    def counted() -> Iterator[Session]:
        with write() as session:
            yield session
        writes.append(None)

    monkeypatch.setattr(db, "write", counted)
    token = make_token(api.client, "POST", URI, body, idempotency_key=_key(body))
    created = _post(api, body, f"Bearer {token}")
    monkeypatch.undo()
    assert created.status_code == 201, created.text
    assert len(writes) == 1
    _refused(api, installation, body, f"Bearer {token}", "already used")


def test_a_refused_create_spends_its_nonce_all_the_same(
    api: Api, installation: Installation, auth_wallet: WalletInfo
) -> None:
    """Intake refuses the body (a fractional amount): nothing is stored, yet the token's nonce
    is used, as for any authenticated call; sending the token again is a replay."""
    bad = withdrawal(auth_wallet.name, nonce=int(uuid.uuid4().int % 10**9))
    bad["amount"] = 1.5
    body = json.dumps(bad).encode()
    token = make_token(api.client, "POST", URI, body, idempotency_key=_key(body))
    before = installation.counts()
    assert_problem(_post(api, body, f"Bearer {token}"), 422)
    assert installation.counts() == before
    _refused(api, installation, body, f"Bearer {token}", "already used")


def test_a_retried_create_answered_from_storage_spends_the_retrys_nonce(
    api: Api, installation: Installation, body: bytes
) -> None:
    first = make_token(api.client, "POST", URI, body, idempotency_key=_key(body))
    assert _post(api, body, f"Bearer {first}").status_code == 201
    retry = make_token(api.client, "POST", URI, body, idempotency_key=_key(body))
    again = _post(api, body, f"Bearer {retry}")
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    _refused(api, installation, body, f"Bearer {retry}", "already used")


def test_one_create_token_sent_many_times_at_once_is_accepted_once(
    api: Api, installation: Installation, body: bytes
) -> None:
    token = make_token(api.client, "POST", URI, body, idempotency_key=_key(body))
    before = installation.counts()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _post(api, body, f"Bearer {token}"), range(8)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201] + [401] * 7, [answer.text for answer in answers]
    assert installation.counts()["requests"] == before["requests"] + 1


@pytest.mark.parametrize("nonce", ["short", "x" * 129, 12345678, ["a" * 10]])
def test_nonce_of_the_wrong_shape(
    api: Api, installation: Installation, body: bytes, nonce: object
) -> None:
    token = make_token(api.client, "POST", URI, body, nonce=nonce, idempotency_key=_key(body))
    _refused(api, installation, body, f"Bearer {token}", "nonce")


# -- binding to this call ------------------------------------------------------------------------


def test_wrong_body_hash(api: Api, installation: Installation, body: bytes) -> None:
    token = make_token(
        api.client,
        "POST",
        URI,
        body,
        idempotency_key=_key(body),
        bodyHash=hashlib.sha256(body + b" ").hexdigest(),
    )
    _refused(api, installation, body, f"Bearer {token}", "bodyHash")


def test_body_changed_after_signing(
    api: Api, installation: Installation, body: bytes, auth_wallet: WalletInfo
) -> None:
    token = make_token(api.client, "POST", URI, body, idempotency_key=_key(body))
    changed = body.replace(b'"1000000000000000"', b'"9000000000000000"')
    assert changed != body
    _refused(api, installation, changed, f"Bearer {token}", "bodyHash")


def test_token_for_another_path(api: Api, installation: Installation, body: bytes) -> None:
    token = make_token(api.client, "POST", "/v1/requests/req_1/cancel", body)
    _refused(api, installation, body, f"Bearer {token}", "uri")


def test_token_for_another_query_string(api: Api, installation: Installation, body: bytes) -> None:
    token = make_token(api.client, "POST", URI, body, idempotency_key=_key(body))
    _refused(api, installation, body, f"Bearer {token}", "uri", uri=URI + "?dry_run=1")


def test_token_query_string_differs_on_a_get(api: Api, installation: Installation) -> None:
    token = make_token(api.client, "GET", URI + "?limit=3")
    before = installation.counts()
    response = api.call("GET", URI + "?limit=4", token=token)
    assert_problem(response, 401, "uri")
    assert installation.counts() == before


def test_token_for_another_method(api: Api, installation: Installation, body: bytes) -> None:
    token = make_token(api.client, "GET", URI, body)
    _refused(api, installation, body, f"Bearer {token}", "method")


# -- times ---------------------------------------------------------------------------------------


def _at(offset: int, lifetime: int = 30) -> Callable[[ClientKeys, bytes], str]:
    def build(client: ClientKeys, body: bytes) -> str:
        return make_token(
            client,
            "POST",
            URI,
            body,
            idempotency_key=_key(body),
            now=int(time.time()) + offset,
            lifetime=lifetime,
        )

    return build


@pytest.mark.parametrize(
    ("build", "detail"),
    [
        pytest.param(_at(-120), "expired", id="expired-long-ago"),
        pytest.param(_at(-95, lifetime=60), "expired", id="expired-beyond-skew"),
        pytest.param(_at(45), "future", id="iat-in-the-future"),
        pytest.param(_at(0, lifetime=61), "at most 60", id="lifetime-61s"),
        pytest.param(_at(0, lifetime=3600), "at most 60", id="lifetime-1h"),
        pytest.param(_at(0, lifetime=0), "after iat", id="exp-equals-iat"),
        pytest.param(_at(0, lifetime=-10), "after iat", id="exp-before-iat"),
    ],
)
def test_token_times_are_enforced(
    api: Api,
    installation: Installation,
    body: bytes,
    build: Callable[[ClientKeys, bytes], str],
    detail: str,
) -> None:
    _refused(api, installation, body, f"Bearer {build(api.client, body)}", detail)


@pytest.mark.parametrize("iat", [pytest.param("now-as-float", id="float"), "12345", True, None])
def test_non_integer_iat(api: Api, installation: Installation, body: bytes, iat: object) -> None:
    now = time.time()
    value = now if iat == "now-as-float" else (str(int(now)) if iat == "12345" else iat)
    claims = _claims(api.client, body, iat=value, exp=int(now) + 30)
    if value is None:
        claims.pop("iat")
    token = jwt.encode(claims, api.client.private_key, algorithm="EdDSA")
    _refused(api, installation, body, f"Bearer {token}")


@pytest.mark.parametrize("claim", ["sub", "uri", "method", "bodyHash", "nonce", "iat", "exp"])
def test_missing_claim(api: Api, installation: Installation, body: bytes, claim: str) -> None:
    claims = _claims(api.client, body)
    del claims[claim]
    token = jwt.encode(claims, api.client.private_key, algorithm="EdDSA")
    assert claim not in jwt.decode(token, options={"verify_signature": False})
    _refused(api, installation, body, f"Bearer {token}", claim)


# -- who signed it -------------------------------------------------------------------------------


def _answer_to(api: Api, installation: Installation, body: bytes, token: str) -> dict[str, Any]:
    return _refused(api, installation, body, f"Bearer {token}")


def _disabled_client(installation: Installation) -> ClientKeys:
    disabled = installation.client()
    with installation.runtime.db.write() as session:
        row = session.get(Client, disabled.id)
        assert row is not None
        row.disabled_at = utcnow()
    return disabled


def test_an_unknown_client_answers_exactly_like_a_bad_signature(
    api: Api, installation: Installation, body: bytes
) -> None:
    """Whether a client id exists must not show: same status, type, title and detail."""
    stranger = installation.client()  # any key: the id it names does not exist
    unknown = ClientKeys("cli_doesnotexist000000", "nobody", stranger.private_key)
    impostor = ClientKeys(api.client.id, api.client.name, stranger.private_key)
    disabled = _disabled_client(installation)
    disabled_impostor = ClientKeys(disabled.id, disabled.name, stranger.private_key)
    answers = [
        _answer_to(
            api, installation, body, make_token(keys, "POST", URI, body, idempotency_key=_key(body))
        )
        for keys in (unknown, impostor, disabled_impostor)
    ]
    assert "signature" in answers[0]["detail"]
    assert answers[0] == answers[1] == answers[2]


def test_an_unknown_client_with_a_claim_missing_still_looks_like_a_bad_signature(
    api: Api, installation: Installation, body: bytes
) -> None:
    claims = _claims(api.client, body, sub="cli_doesnotexist000000")
    del claims["nonce"]
    token = jwt.encode(claims, api.client.private_key, algorithm="EdDSA")
    known = make_token(
        ClientKeys(api.client.id, "", installation.client().private_key), "POST", URI, body
    )
    assert _answer_to(api, installation, body, token) == _answer_to(api, installation, body, known)


def test_a_disabled_client_is_told_only_when_it_holds_the_key(
    api: Api, installation: Installation, body: bytes
) -> None:
    disabled = _disabled_client(installation)
    _refused(
        api,
        installation,
        body,
        f"Bearer {make_token(disabled, 'POST', URI, body, idempotency_key=_key(body))}",
        "disabled",
    )


def test_signed_with_another_clients_key(api: Api, installation: Installation, body: bytes) -> None:
    other = installation.client()
    impostor = ClientKeys(api.client.id, api.client.name, other.private_key)
    token = make_token(impostor, "POST", URI, body, idempotency_key=_key(body))
    _refused(api, installation, body, f"Bearer {token}", "signature")


def test_tampered_claims_with_the_original_signature(
    api: Api, installation: Installation, body: bytes
) -> None:
    token = make_token(api.client, "POST", URI, body, idempotency_key=_key(body))
    head, _, signature = token.split(".")
    tampered = _b64(json.dumps(_claims(api.client, body)).encode())
    _refused(api, installation, body, f"Bearer {head}.{tampered}.{signature}", "signature")


def test_alg_hs256(api: Api, installation: Installation, body: bytes) -> None:
    token = jwt.encode(_claims(api.client, body), "k" * 64, algorithm="HS256")
    _refused(api, installation, body, f"Bearer {token}", "EdDSA")


def test_alg_hs256_keyed_with_the_clients_public_key(
    api: Api, installation: Installation, body: bytes
) -> None:
    """The classic algorithm confusion: an HMAC keyed with the (public) verification key."""
    from cryptography.hazmat.primitives import serialization

    public_pem = api.client.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(_claims(api.client, body)).encode())
    mac = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    _refused(api, installation, body, f"Bearer {header}.{payload}.{_b64(mac)}", "EdDSA")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none(api: Api, installation: Installation, body: bytes, alg: str) -> None:
    token = _unsigned_token({"alg": alg, "typ": "JWT"}, _claims(api.client, body))
    _refused(api, installation, body, f"Bearer {token}")


def test_eddsa_header_without_a_signature(
    api: Api, installation: Installation, body: bytes
) -> None:
    token = _unsigned_token({"alg": "EdDSA", "typ": "JWT"}, _claims(api.client, body))
    _refused(api, installation, body, f"Bearer {token}", "signature")


# -- the Idempotency-Key header is signed too ------------------------------------------------------


def _create(
    api: Api, installation: Installation, body: bytes, token: str, headers: list[tuple[str, str]]
) -> httpx.Response:
    before = installation.counts()
    sent = [("Authorization", f"Bearer {token}"), ("Content-Type", "application/json"), *headers]
    response = api.send("POST", URI, content=body, headers=sent)
    assert installation.counts() == before
    return response


def test_a_create_whose_token_does_not_sign_the_key_is_refused(
    api: Api, installation: Installation, body: bytes
) -> None:
    token = make_token(api.client, "POST", URI, body)
    _refused(api, installation, body, f"Bearer {token}", "idempotencyKey")


def test_an_idempotency_key_swapped_in_transit_is_refused(
    api: Api, installation: Installation, body: bytes
) -> None:
    """A retry answered by another request's key would turn one withdrawal into two."""
    token = make_token(api.client, "POST", URI, body, idempotency_key=str(uuid.uuid4()))
    _refused(api, installation, body, f"Bearer {token}", "does not match the Idempotency-Key")


@pytest.mark.parametrize("claim", [pytest.param(None, id="no-claim"), "k-123", ""])
def test_a_create_without_the_header_is_refused(
    api: Api, installation: Installation, body: bytes, claim: str | None
) -> None:
    token = make_token(api.client, "POST", URI, body, idempotency_key=claim)
    assert_problem(_create(api, installation, body, token, []), 401, "Idempotency-Key header")


@pytest.mark.parametrize("claim", [12345678, None, ["k-1"], "K-1", "k-1 "])
def test_an_idempotency_claim_must_be_the_headers_exact_string(
    api: Api, installation: Installation, body: bytes, claim: object
) -> None:
    claims = _claims(api.client, body, idempotencyKey=claim)
    token = jwt.encode(claims, api.client.private_key, algorithm="EdDSA")
    headers = [("Idempotency-Key", "k-1" if claim != 12345678 else "12345678")]
    assert_problem(_create(api, installation, body, token, headers), 401, "idempotencyKey")


def test_two_idempotency_key_headers_are_refused(
    api: Api, installation: Installation, body: bytes
) -> None:
    token = make_token(api.client, "POST", URI, body, idempotency_key="k-1")
    headers = [("Idempotency-Key", "k-1"), ("Idempotency-Key", "k-2")]
    assert_problem(_create(api, installation, body, token, headers), 401, "Idempotency-Key")


def test_any_call_that_sends_the_header_must_sign_it(api: Api, installation: Installation) -> None:
    unsigned = make_token(api.client, "GET", URI)
    header = {"Idempotency-Key": "k-1"}
    assert_problem(api.call("GET", URI, headers=header, token=unsigned), 401, "idempotencyKey")
    assert api.call("GET", URI, headers=header).status_code == 200  # Api signs what it sends


def test_an_idempotency_claim_without_the_header_is_refused(api: Api) -> None:
    token = make_token(api.client, "GET", URI, idempotency_key="k-1")
    assert_problem(api.call("GET", URI, token=token), 401, "no Idempotency-Key header")


# -- a client sees only its own requests -----------------------------------------------------------


def test_a_client_sees_only_its_own_requests(
    isolated_http: HttpClient, installation: Installation, auth_wallet: WalletInfo
) -> None:
    api = Api(isolated_http.request, installation.client())
    created = api.create(withdrawal(auth_wallet.name, nonce=int(uuid.uuid4().int % 10**9)))
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    other = Api(isolated_http.request, installation.client())

    before = installation.counts()
    not_yours = other.get(request_id)
    missing = other.get("req_" + "0" * 24)
    assert_problem(not_yours, 404, request_id)
    assert_problem(missing, 404)
    # Someone else's request and a missing one look alike.
    assert not_yours.json()["title"] == missing.json()["title"]
    assert not_yours.json()["type"] == missing.json()["type"]

    listed = other.call("GET", URI)
    assert listed.status_code == 200, listed.text
    assert listed.json()["items"] == []

    cancel = other.call("POST", f"{URI}/{request_id}/cancel")
    assert_problem(cancel, 404, request_id)
    assert installation.counts() == before

    mine = api.get(request_id)
    assert mine.status_code == 200
    assert mine.json()["status"] == "approved"
    own_list = api.call("GET", URI).json()["items"]
    assert [item["id"] for item in own_list] == [request_id]
