"""`/openapi.json` describes what clients get: typed answers, request bodies, problem+json errors.

Clients generate SDKs from the document, so it is checked twice: that it names the fields
DESIGN.md promises, and that real answers from the app validate against it (with the small
independent checker in `openapi_schema`, not with the models that produced the schemas).
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient as HttpClient

from custody.approvals.approvers import add_approver
from custody.requests.states import RequestStatus
from custody.signing.worker import SignerWorker
from tests.api.openapi_schema import Document, SchemaMismatch
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation, WalletInfo

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"
REQUEST_FIELDS = {
    "id",
    "status",
    "type",
    "wallet",
    "asset",
    "amount",
    "destination",
    "policy",
    "payload",
    "approvals",
    "created_at",
}


@pytest.fixture(scope="module")
def doc(http: HttpClient) -> Document:
    answer = http.get("/openapi.json")
    assert answer.status_code == 200
    return Document(answer.json())


def properties(doc: Document, schema: dict[str, Any]) -> dict[str, Any]:
    return {name: doc.resolve(sub) for name, sub in doc.resolve(schema)["properties"].items()}


def test_request_answers_are_typed(doc: Document) -> None:
    created = doc.response_schema("/v1/requests", "post", 201, JSON)
    read = doc.response_schema("/v1/requests/{request_id}", "get", 200, JSON)
    assert created == read
    optional = {"result", "reason", "waiting", "replaces", "replaced_by"}
    assert set(created["properties"]) == REQUEST_FIELDS | optional
    # `result`, `reason`, `waiting` and the replacement links appear only when there is one;
    # everything else always (maybe null).
    assert set(created["required"]) == REQUEST_FIELDS
    assert created["additionalProperties"] is False

    fields = properties(doc, created)
    assert set(fields["status"]["enum"]) == {s.value for s in RequestStatus}
    assert fields["amount"]["type"] == "string"
    assert fields["policy"]["discriminator"]["propertyName"] == "decision"
    assert set(fields["policy"]["discriminator"]["mapping"]) == {
        "allow",
        "deny",
        "require_approvals",
    }
    for variant in fields["policy"]["oneOf"]:
        assert {"decision", "rule", "reason"} <= set(doc.resolve(variant)["required"])
    assert set(fields["payload"]["properties"]) == {"digest", "summary", "transaction"}
    approvals = properties(doc, fields["approvals"])
    assert set(approvals) == {"required", "group", "quorum", "decisions", "expires_at"}
    assert set(doc.resolve(approvals["quorum"])["properties"]) == {"required", "received", "met"}
    results = [set(doc.resolve(r)["properties"]) for r in fields["result"]["anyOf"]]
    # On a connected chain the transaction's block and depth join it (DESIGN.md).
    assert results == [
        {"raw_transaction", "tx_hash", "block_number", "confirmations"},
        {"signature"},
        {"psbt", "raw_transaction", "txid"},
    ]
    assert set(doc.resolve(fields["result"]["anyOf"][0])["required"]) == {
        "raw_transaction",
        "tx_hash",
    }

    page = doc.response_schema("/v1/requests", "get", 200, JSON)
    assert set(page["required"]) == {"items", "next_cursor"}
    assert doc.resolve(page["properties"]["items"]["items"]) == created


def test_request_bodies_are_documented_as_one_of_by_type(doc: Document) -> None:
    for path in ("/v1/requests", "/v1/policy/simulate"):
        body = doc.openapi["paths"][path]["post"]["requestBody"]
        assert body["required"] is True
        schema = doc.resolve(body["content"][JSON]["schema"])
        assert schema["discriminator"]["propertyName"] == "type"
        assert set(schema["discriminator"]["mapping"]) == {
            "withdrawal",
            "trade",
            "contract_call",
            "sign_message",
            "bitcoin_psbt",
        }
        assert len(schema["oneOf"]) == 5
    withdrawal_body = doc.resolve(doc.openapi["components"]["schemas"]["WithdrawalBody"])
    # `evm` is optional: a connected chain fills what it leaves out (DESIGN.md); a chain
    # without a node refuses a body without it (tests/broadcast).
    assert set(withdrawal_body["required"]) == {
        "type",
        "wallet",
        "asset",
        "amount",
        "destination",
    }
    assert "evm" in withdrawal_body["properties"]
    assert withdrawal_body["properties"]["amount"]["type"] == "string"
    header = doc.openapi["paths"]["/v1/requests"]["post"]["parameters"]
    assert {"name": "Idempotency-Key", "in": "header", "required": True} | header[0] == header[0]


@pytest.mark.parametrize(
    ("path", "method", "statuses"),
    [
        ("/v1/requests", "post", {400, 401, 403, 409, 413, 422, 503}),
        ("/v1/requests/{request_id}", "get", {401, 404, 422, 503}),
        ("/v1/requests", "get", {401, 422, 503}),
        ("/v1/requests/{request_id}/approvals", "post", {401, 403, 404, 409, 422}),
        ("/v1/ledger/checkpoint", "get", {401, 404}),
        ("/readyz", "get", {503}),
    ],
)
def test_errors_are_problem_json(doc: Document, path: str, method: str, statuses: set[int]) -> None:
    responses = doc.openapi["paths"][path][method]["responses"]
    for status in statuses:
        content = responses[str(status)]["content"]
        assert list(content) == [PROBLEM_JSON], (path, status)
        problem = doc.resolve(content[PROBLEM_JSON]["schema"])
        assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert "HTTPValidationError" not in doc.openapi["components"]["schemas"]


def test_real_answers_validate_against_the_document(
    doc: Document,
    api: Api,
    http: HttpClient,
    wallet: WalletInfo,
    signer: SignerWorker,
    installation: Installation,
) -> None:
    def check(answer: Any, path: str, method: str) -> dict[str, Any]:
        media = answer.headers["content-type"]
        schema = doc.response_schema(path, method, answer.status_code, media)
        body: dict[str, Any] = answer.json()
        doc.validate(body, schema)
        return body

    key = str(uuid.uuid4())
    raw = json.dumps(withdrawal(wallet.name, nonce=40)).encode()
    created = check(
        api.call("POST", "/v1/requests", raw, headers={"Idempotency-Key": key}),
        "/v1/requests",
        "post",
    )
    replayed = api.call("POST", "/v1/requests", raw, headers={"Idempotency-Key": key})
    assert check(replayed, "/v1/requests", "post") == created
    assert signer.drain() == 1
    signed = check(api.get(created["id"]), "/v1/requests/{request_id}", "get")
    assert "raw_transaction" in signed["result"]
    check(api.call("GET", "/v1/requests?limit=2"), "/v1/requests", "get")

    installation.apply_policy(
        "version: 1\nrules:\n"
        "  - {id: messages, match: {type: sign_message}, action: allow}\n"
        "  - {id: two, match: {type: withdrawal}, action: "
        "{require_approvals: {all_of: [{count: 1, group: ops}, {count: 1, group: risk}]}}}\n"
    )
    try:
        message = api.create({"type": "sign_message", "wallet": wallet.name, "message": "hi"})
        assert signer.drain() == 1
        signed_message = check(api.get(message.json()["id"]), "/v1/requests/{request_id}", "get")
        assert "signature" in signed_message["result"]
        pending = check(api.create(withdrawal(wallet.name, nonce=41)), "/v1/requests", "post")
        assert pending["policy"]["group"] is None
        answer = http.post(
            f"/v1/requests/{pending['id']}/approvals",
            content=approval(installation, pending, "ops"),
            headers={"Content-Type": JSON},
        )
        check(answer, "/v1/requests/{request_id}/approvals", "post")
        read = check(api.get(pending["id"]), "/v1/requests/{request_id}", "get")
        assert len(read["approvals"]["decisions"]) == 1
        cancelled = api.call("POST", f"/v1/requests/{pending['id']}/cancel")
        check(cancelled, "/v1/requests/{request_id}/cancel", "post")
        simulated = api.call("POST", "/v1/policy/simulate", raw)
        check(simulated, "/v1/policy/simulate", "post")
    finally:
        installation.allow_all_policy()

    check(api.get("req_missing"), "/v1/requests/{request_id}", "get")  # 404
    check(api.create(b'{"type": "withdrawal", "amount": 1.5}'), "/v1/requests", "post")  # 422
    signed_already = api.call("POST", f"/v1/requests/{created['id']}/cancel")  # 409
    check(signed_already, "/v1/requests/{request_id}/cancel", "post")
    check(api.call("GET", "/v1/ledger/public-key"), "/v1/ledger/public-key", "get")
    check(http.get("/healthz"), "/healthz", "get")


def test_the_checker_is_not_vacuous(doc: Document) -> None:
    schema = doc.response_schema("/v1/requests", "post", 201, JSON)
    with pytest.raises(SchemaMismatch, match="missing"):
        doc.validate({"id": "req_x"}, schema)
    problem = doc.response_schema("/v1/requests", "post", 422, PROBLEM_JSON)
    with pytest.raises(SchemaMismatch, match="not of type"):
        doc.validate({"type": "t", "title": "t", "status": "422", "detail": "d"}, problem)


def approval(installation: Installation, request: dict[str, Any], group: str) -> bytes:
    """A device-key approval by a fresh approver of `group` (DESIGN.md's statement)."""
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    name = f"ap-{secrets.token_hex(4)}"
    with installation.runtime.db.write() as session:
        add_approver(session, name=name, groups=[group], device_key_pem=pem, actor="test")
    statement = {
        "type": "custody.approval.v1",
        "request_id": request["id"],
        "payload_digest": request["payload"]["digest"],
        "decision": "approve",
        "approver": name,
    }
    signature = base64.b64encode(key.sign(bytes(rfc8785.dumps(statement)))).decode()
    return json.dumps({"approver": name, "decision": "approve", "signature": signature}).encode()
