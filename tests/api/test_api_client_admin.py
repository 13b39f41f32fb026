"""`custody clients add --role`, `disable`, `enable` and `rotate-key`, judged over HTTP.

Issue 9 §2.2: `--role auditor` was ignored (an auditor's key became a trading client that could
sign requests), and there was no way to disable a client or replace its key.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient as HttpClient

from custody.clients.auth import BAD_SIGNATURE
from custody.signing.worker import SignerWorker
from tests.support.api import Api, withdrawal
from tests.support.cli import CliResult, invoke, ok_json
from tests.support.installation import ClientKeys, Installation, WalletInfo


def _pem_file(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    path = tmp_path / f"{secrets.token_hex(4)}.pub.pem"
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def _custody(installation: Installation, *args: str) -> CliResult:
    return invoke(list(args), installation.env)


def _added(
    installation: Installation, tmp_path: Path, *role: str
) -> tuple[ClientKeys, dict[str, Any]]:
    key = Ed25519PrivateKey.generate()
    name = f"desk-{secrets.token_hex(4)}"
    pem = _pem_file(tmp_path, key)
    data = ok_json(
        _custody(installation, "clients", "add", name, "--public-key", str(pem), *role, "--json")
    )
    return ClientKeys(data["id"], name, key), data


def _detail(answer: Any) -> str:
    assert answer.headers["content-type"].startswith("application/problem+json")
    return str(answer.json()["detail"])


def test_an_auditor_client_cannot_submit_requests(
    installation: Installation, http: HttpClient, wallet: WalletInfo, tmp_path: Path
) -> None:
    keys, data = _added(installation, tmp_path, "--role", "auditor")
    auditor = Api(http.request, keys)
    before = installation.counts()["requests"]
    assert auditor.create(withdrawal(wallet.name)).status_code == 403
    assert auditor.call("POST", "/v1/policy/simulate", b"{}").status_code == 403
    assert installation.counts()["requests"] == before
    assert data["role"] == "auditor"
    assert auditor.call("GET", "/v1/ledger/entries?start=0&limit=1").status_code == 200
    listed = {c["name"]: c for c in ok_json(_custody(installation, "clients", "list", "--json"))}
    assert listed[keys.name]["role"] == "auditor"
    added = [e for e in installation.ledger_entries("client.added") if e["data"]["id"] == keys.id]
    assert added[0]["data"]["role"] == "auditor"


def test_an_unknown_role_is_refused_in_one_line(installation: Installation, tmp_path: Path) -> None:
    pem = _pem_file(tmp_path, Ed25519PrivateKey.generate())
    refused = _custody(
        installation, "clients", "add", "desk-x", "--public-key", str(pem), "--role", "admin"
    )
    assert refused.returncode != 0
    assert "role must be one of trading, auditor" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def _client_calls(http: HttpClient) -> list[tuple[str, str]]:
    """Every (method, path) of the API that takes a client token, from the OpenAPI document."""
    calls = []
    for path, operations in http.app.openapi()["paths"].items():
        for method, operation in operations.items():
            if {"clientToken": []} in operation.get("security", []):
                concrete = re.sub(r"\{[a-z_]+\}", "1", path)
                calls.append((method.upper(), concrete))
    return calls


def test_a_disabled_client_is_refused_on_every_call(
    installation: Installation, http: HttpClient, wallet: WalletInfo, tmp_path: Path
) -> None:
    keys, _ = _added(installation, tmp_path)
    api = Api(http.request, keys)
    assert api.create(withdrawal(wallet.name)).status_code == 201

    disabled = ok_json(_custody(installation, "clients", "disable", keys.name, "--json"))
    assert disabled == {"id": keys.id, "name": keys.name, "disabled": True}
    calls = _client_calls(http)
    assert ("POST", "/v1/requests") in calls
    assert ("GET", "/v1/ledger/checkpoint") in calls
    for method, path in calls:
        body = b"{}" if method == "POST" else b""
        headers = {"Idempotency-Key": secrets.token_hex(8)} if path == "/v1/requests" else None
        answer = api.call(method, path, body, headers=headers)
        assert answer.status_code == 401, (method, path, answer.text)
        assert _detail(answer) == "client is disabled"
    # Someone without the key learns no more than about a client that does not exist.
    impostor = Api(http.request, ClientKeys(keys.id, keys.name, Ed25519PrivateKey.generate()))
    nobody = Api(
        http.request, ClientKeys("cli_" + "0" * 24, "nobody", Ed25519PrivateKey.generate())
    )
    assert _detail(impostor.call("GET", "/v1/requests")) == _detail(
        nobody.call("GET", "/v1/requests")
    )

    human = _custody(installation, "clients", "enable", keys.name)
    assert human.returncode == 0, human.stderr
    assert human.stdout.strip() == f"client {keys.name} enabled"
    assert api.call("GET", "/v1/requests").status_code == 200
    kinds = [
        e["kind"]
        for e in installation.ledger_entries()
        if e["kind"].startswith("client.") and e["data"].get("id") == keys.id
    ]
    assert kinds == ["client.added", "client.disabled", "client.enabled"]


def test_a_rotated_key_replaces_the_old_one(
    installation: Installation, http: HttpClient, wallet: WalletInfo, tmp_path: Path
) -> None:
    keys, _ = _added(installation, tmp_path)
    new_key = Ed25519PrivateKey.generate()
    human = _custody(
        installation,
        "clients",
        "rotate-key",
        keys.name,
        "--public-key",
        str(_pem_file(tmp_path, new_key)),
    )
    assert human.returncode == 0, human.stderr
    assert len(human.stdout.strip().splitlines()) == 1

    old = Api(http.request, keys)
    refused = old.create(withdrawal(wallet.name))
    assert refused.status_code == 401
    assert _detail(refused) == BAD_SIGNATURE
    new = Api(http.request, ClientKeys(keys.id, keys.name, new_key))
    assert new.create(withdrawal(wallet.name)).status_code == 201

    rotated = [
        e for e in installation.ledger_entries("client.key_rotated") if e["data"]["id"] == keys.id
    ]
    raw = new_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert [e["data"]["public_key"] for e in rotated] == [raw.hex()]


def test_rotating_to_the_same_key_or_an_unknown_client_changes_nothing(
    installation: Installation, tmp_path: Path
) -> None:
    keys, _ = _added(installation, tmp_path)
    same = _pem_file(tmp_path, keys.private_key)
    before = installation.counts()
    for name, message in ((keys.name, "already"), ("no-such-client", "unknown client")):
        refused = _custody(
            installation, "clients", "rotate-key", name, "--public-key", str(same), "--json"
        )
        assert refused.returncode != 0
        assert message in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    assert installation.counts() == before


@pytest.mark.parametrize("command", ["disable", "enable"])
def test_disable_and_enable_name_an_existing_client(
    installation: Installation, command: str
) -> None:
    refused = _custody(installation, "clients", command, "no-such-client")
    assert refused.returncode != 0
    assert "unknown client 'no-such-client'" in refused.stderr


def test_rotating_a_key_cancels_what_the_old_key_asked_for_and_nobody_signed(
    installation: Installation,
    http: HttpClient,
    wallet: WalletInfo,
    signer: SignerWorker,
    tmp_path: Path,
) -> None:
    """Their evidence is a token of the old key, which the signer no longer accepts: they end now,
    with a reason the client can act on, rather than fail at signing after people approved them."""
    keys, _ = _added(installation, tmp_path)
    old = Api(http.request, keys)
    signed = old.create(withdrawal(wallet.name, nonce=secrets.randbelow(10**9))).json()
    assert signer.drain() == 1
    waiting = old.create(withdrawal(wallet.name, nonce=secrets.randbelow(10**9))).json()
    assert waiting["status"] == "approved"
    rotated = ok_json(
        _custody(
            installation,
            "clients",
            "rotate-key",
            keys.name,
            "--public-key",
            str(_pem_file(tmp_path, Ed25519PrivateKey.generate())),
            "--json",
        )
    )
    assert rotated["cancelled_requests"] == [waiting["id"]]
    assert signer.drain() == 0
    entries = [e["data"] for e in installation.ledger_entries("request.cancelled")]
    [cancelled] = [e for e in entries if e["request"] == waiting["id"]]
    assert "key was rotated" in cancelled["reason"]
    assert signed["id"] not in rotated["cancelled_requests"]
