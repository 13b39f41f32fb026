"""The SDK's token is the one README's HTTP API section describes: the same claims as the
test-suite's own token (tests/support/api.py, written from the contract, not from the SDK), and
the server re-verifies it as a create's stored evidence."""

from __future__ import annotations

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.client import sign_call
from custody.clients.auth import verify_stored_call
from tests.support.api import make_token
from tests.support.installation import ClientKeys

BODY = b'{"type":"withdrawal"}'


def _claims(token: str) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    return {k: v for k, v in claims.items() if k != "nonce"}  # fresh per call in both


def test_the_sdk_signs_the_claims_the_contract_names() -> None:
    desk = ClientKeys("cl_test", "desk", Ed25519PrivateKey.generate())
    for method, uri, body, key in [
        ("POST", "/v1/requests", BODY, "order-1"),
        ("GET", "/v1/requests/req_1?wait=5.0", b"", None),
        ("POST", "/v1/requests/req_1/cancel", b"", None),
    ]:
        ours = sign_call(desk.id, desk.private_key, method, uri, body, idempotency_key=key)
        contract = make_token(desk, method, uri, body, idempotency_key=key)
        assert _claims(ours).keys() == _claims(contract).keys()
        # iat and exp may straddle a second between the two calls.
        assert {k: v for k, v in _claims(ours).items() if k not in ("iat", "exp")} == {
            k: v for k, v in _claims(contract).items() if k not in ("iat", "exp")
        }


def test_the_server_verifies_an_sdk_token_as_a_creates_evidence() -> None:
    key = Ed25519PrivateKey.generate()
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    token = sign_call("cl_test", key, "POST", "/v1/requests", BODY, idempotency_key="order-1")
    claims = verify_stored_call(
        pem, token, client_id="cl_test", body=BODY, idempotency_key="order-1"
    )
    assert claims["idempotencyKey"] == "order-1"
