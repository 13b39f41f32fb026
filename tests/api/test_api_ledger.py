"""`/v1/ledger`: checkpoint, entries and proofs, checked with the independent RFC 9162 code."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient as HttpClient

from custody.ledger.checkpoints import make_checkpoint, runtime_identity
from custody.ledger.verify import (
    parse_checkpoint,
    parse_verifier_key,
    verify_consistency,
    verify_inclusion,
)
from tests.ledger import rfc9162
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation, WalletInfo


@pytest.fixture
def auditor(http: HttpClient, installation: Installation) -> Api:
    return Api(http.request, installation.client(role="auditor"))


def signed_checkpoint(installation: Installation) -> None:
    rt = installation.runtime
    make_checkpoint(rt.db, rt.token(), runtime_identity(rt), on_fork=None)


def test_auditor_verifies_checkpoint_entries_and_proofs(
    auditor: Api, api: Api, wallet: WalletInfo, installation: Installation
) -> None:
    assert api.create(withdrawal(wallet.name, nonce=1)).status_code == 201
    signed_checkpoint(installation)
    key_answer = auditor.call("GET", "/v1/ledger/public-key")
    assert key_answer.status_code == 200
    key = parse_verifier_key(key_answer.json()["verifier_key"])

    note = auditor.call("GET", "/v1/ledger/checkpoint")
    assert note.status_code == 200
    assert note.headers["content-type"].startswith("text/plain")
    cp = parse_checkpoint(note.text, key)

    entries: list[bytes] = []
    while len(entries) < cp.size:
        page = auditor.call("GET", f"/v1/ledger/entries?start={len(entries)}&limit=50").json()
        entries += [rfc9162.canonical(e["entry"]) for e in page["entries"]]
    entries = entries[: cp.size]
    assert rfc9162.mth(entries) == cp.root

    for index in {0, cp.size // 2, cp.size - 1}:
        answer = auditor.call(
            "GET", f"/v1/ledger/proofs/inclusion?index={index}&tree_size={cp.size}"
        )
        assert answer.status_code == 200, answer.text
        proof = [bytes.fromhex(h) for h in answer.json()["proof"]]
        assert proof == rfc9162.path(index, entries)
        assert verify_inclusion(rfc9162.h(b"\x00" + entries[index]), index, cp.size, proof, cp.root)

    old = max(1, cp.size - 3)
    answer = auditor.call("GET", f"/v1/ledger/proofs/consistency?from={old}&to={cp.size}")
    assert answer.status_code == 200
    proof = [bytes.fromhex(h) for h in answer.json()["proof"]]
    assert verify_consistency(old, cp.size, rfc9162.mth(entries[:old]), cp.root, proof)


def test_auditor_may_not_create_or_read_requests(auditor: Api, wallet: WalletInfo) -> None:
    before = auditor.create(withdrawal(wallet.name, nonce=2))
    assert before.status_code == 403
    assert before.headers["content-type"] == "application/problem+json"
    assert auditor.call("GET", "/v1/requests").status_code == 403


@pytest.mark.parametrize(
    "uri",
    [
        "/v1/ledger/proofs/inclusion?index=5&tree_size=999999999",
        "/v1/ledger/proofs/inclusion?index=9&tree_size=3",
        "/v1/ledger/proofs/consistency?from=5&to=2",
        "/v1/ledger/entries?start=-1",
        "/v1/ledger/entries?limit=100000",
    ],
)
def test_bad_proof_queries_are_problems(auditor: Api, installation: Installation, uri: str) -> None:
    signed_checkpoint(installation)
    answer = auditor.call("GET", uri)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"


def test_ledger_needs_a_signed_token(http: HttpClient) -> None:
    answer = http.get("/v1/ledger/checkpoint")
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"


def test_trading_clients_cannot_read_other_clients_entries(
    api: Api, installation: Installation
) -> None:
    """Entries name every client's requests: only auditors read them; hashes stay open."""
    signed_checkpoint(installation)
    assert api.call("GET", "/v1/ledger/entries?start=0&limit=5").status_code == 403
    assert api.call("GET", "/v1/ledger/checkpoint").status_code == 200
    assert api.call("GET", "/v1/ledger/proofs/inclusion?index=0&tree_size=1").status_code == 200
