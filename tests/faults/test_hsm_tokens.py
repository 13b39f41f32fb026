"""Several tokens against a real `custody serve` on a development home of its own: `custody hsm
add-token` makes a second SoftHSM token beside the first and registers it, keys are generated on
either, and the signer routes each request to its key's token. When the second token's objects
go away, keys on the main token go on signing, the second token's requests wait (approved, not
failed) and are signed once it is back.

SoftHSM reads its configuration once per process, and the library reset that sees a token again
would end the sessions other tests of this process hold: everything runs in `custody` processes.
"""

from __future__ import annotations

import json
import sqlite3
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_account import Account

from tests.e2e.process import clean_env, ok_json, run_custody, run_custody_many
from tests.support.api import Api, withdrawal
from tests.support.installation import ClientKeys
from tests.support.tree import Tree, free_port, start

pytestmark = pytest.mark.slow

ALLOW_ALL = "version: 1\nrules:\n  - {id: allow-all, match: {type: withdrawal}, action: allow}\n"


@dataclass
class TwoTokens:
    home: Path
    env: dict[str, str]
    tree: Tree
    api: Api
    wallets: dict[str, dict[str, Any]]  # by token name: the wallet of a key on it
    added: dict[str, Any]  # what `hsm add-token --json` printed

    def custody(self, *args: str) -> Any:
        return ok_json(run_custody([*args, "--json"], self.env))

    def status(self, request_id: str) -> str:
        with sqlite3.connect(self.home / "custody.db") as db:
            [(found,)] = db.execute("SELECT status FROM requests WHERE id = ?", (request_id,))
        return str(found)

    def token_folder(self, label: str) -> Path:
        """SoftHSM keeps each token in a folder of its own under hsm/tokens."""
        folders = self.home / "hsm" / "tokens"
        [found] = [
            f for f in folders.iterdir() if label.encode() in (f / "token.object").read_bytes()
        ]
        return found


@pytest.fixture(scope="module")
def two_tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoTokens]:
    root = tmp_path_factory.mktemp("hsm-tokens")
    home = root / "home"
    env = clean_env(
        home,
        CUSTODY_WORKER_POLL_SECONDS="0.05",
        CUSTODY_HSM_RETRY_MAX_SECONDS="1",
        CUSTODY_HSM_CHECK_SECONDS="0.5",
    )
    run = lambda *args: ok_json(run_custody([*args, "--json"], env))  # noqa: E731
    run("init")
    added = run("hsm", "add-token", "vault")
    private = Ed25519PrivateKey.generate()
    pem = root / "desk.pem"
    pem.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    policy = root / "allow.yaml"
    policy.write_text(ALLOW_ALL)
    # The rest in one process (one interpreter start, not six), started after add-token: SoftHSM
    # lists the tokens present when a process loads it.
    generate = ["keys", "generate", "--algorithm", "secp256k1", "--label"]
    create = ["wallets", "create", "--chain", "ethereum"]
    commands = [
        [*generate, "key-custody-dev", "--token", "custody-dev"],
        [*create, "w-custody-dev", "--key", "key-custody-dev"],
        [*generate, "key-vault", "--token", "vault"],
        [*create, "w-vault", "--key", "key-vault"],
        ["clients", "add", "desk", "--public-key", str(pem)],
        ["policy", "apply", str(policy)],
    ]
    done = [ok_json(result) for result in run_custody_many([[*c, "--json"] for c in commands], env)]
    assert len(done) == len(commands)
    wallets = {"custody-dev": done[1], "vault": done[3]}
    client = done[4]
    port = free_port()
    tree = start(
        ["serve", "--host", "127.0.0.1", "--port", str(port)],
        env,
        root / "serve.log",
        roles=("api-1", "signer-1", "background"),
        port=port,
    )
    http = httpx.Client(base_url=tree.url, timeout=10)
    try:
        yield TwoTokens(
            home,
            env,
            tree,
            Api(http.request, ClientKeys(client["id"], "desk", private)),
            wallets,
            added,
        )
    finally:
        http.close()
        tree.stop()


def test_add_token_makes_a_second_token_beside_the_first_and_registers_it(
    two_tokens: TwoTokens,
) -> None:
    added, hsm = two_tokens.added, two_tokens.home / "hsm"
    assert added["label"] == "vault"
    pins = Path(added["pin_file"])
    assert pins.parent == hsm  # beside pins.json, in the same SoftHSM configuration
    assert stat.S_IMODE(pins.stat().st_mode) == 0o600
    assert json.loads(pins.read_text())["label"] == "vault"
    config = (two_tokens.home / "custody.toml").read_text()
    assert '[tokens."vault"]' in config
    assert "user_pin" not in config  # the file names where the PIN is, never the PIN
    listed = {t["token"]: t for t in two_tokens.custody("hsm", "tokens")}
    assert listed["custody-dev"]["main"] is True
    assert (listed["vault"]["label"], listed["vault"]["main"]) == ("vault", False)
    keys = {k["label"]: k["token"] for k in two_tokens.custody("keys", "list")}
    assert keys["key-vault"] == "vault"
    assert keys["key-custody-dev"] == "custody-dev"
    again = run_custody(["hsm", "add-token", "vault"], two_tokens.env)
    assert again.returncode != 0
    assert len(again.stderr.strip().splitlines()) == 1, again.stderr
    assert "configured already" in again.stderr


def _create(two_tokens: TwoTokens, token: str, nonce: int) -> str:
    created = two_tokens.api.create(
        withdrawal(two_tokens.wallets[token]["name"], amount="9", nonce=nonce)
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def _raw(two_tokens: TwoTokens, request_id: str) -> str:
    return str(two_tokens.api.get(request_id).json()["result"]["raw_transaction"])


def test_with_the_second_token_gone_the_main_token_signs_and_the_rest_waits(
    two_tokens: TwoTokens,
) -> None:
    tree = two_tokens.tree

    def signed(request_id: str) -> bool:
        return two_tokens.status(request_id) == "signed"

    vault_address = two_tokens.wallets["vault"]["address"]
    before = _create(two_tokens, "vault", 1)
    tree.wait_for("the vault's first request signed", lambda: signed(before))
    assert Account.recover_transaction(_raw(two_tokens, before)) == vault_address

    folder = two_tokens.token_folder("vault")
    away = two_tokens.home / "vault-away"  # outside hsm/tokens, where SoftHSM looks
    folder.rename(away)
    try:
        waiting = _create(two_tokens, "vault", 2)
        main = [_create(two_tokens, "custody-dev", n) for n in (1, 2, 3)]
        tree.wait_for("the main token's requests signed", lambda: all(map(signed, main)))
        for request_id in main:
            recovered = Account.recover_transaction(_raw(two_tokens, request_id))
            assert recovered == two_tokens.wallets["custody-dev"]["address"]
        assert two_tokens.status(waiting) == "approved"
        tree.wait_for(
            "the vault reported unavailable",
            lambda: (
                {t["token"]: t["health"] for t in two_tokens.custody("hsm", "tokens")}
                == {"custody-dev": "ok", "vault": "unavailable"}
            ),
        )
        assert httpx.get(f"{tree.url}/readyz", timeout=5).status_code == 200
    finally:
        away.rename(folder)
    tree.wait_for("the vault's waiting request signed once it is back", lambda: signed(waiting))
    assert Account.recover_transaction(_raw(two_tokens, waiting)) == vault_address
    with sqlite3.connect(two_tokens.home / "custody.db") as db:
        assert list(db.execute("SELECT id FROM requests WHERE status = 'failed'")) == []


def test_a_backup_copies_the_main_tokens_keys_and_says_why_not_the_others(
    two_tokens: TwoTokens,
) -> None:
    folder = two_tokens.home.parent / "backup"
    made = two_tokens.custody(
        "ceremony", "backup", str(folder), "--shares", "3", "--threshold", "2"
    )
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [k["label"] for k in manifest["keys"]] == ["key-custody-dev"]
    skipped = {k["label"]: k["reason"] for k in manifest["not_included"]}
    assert skipped["key-vault"].startswith("on token vault:")
    verified = two_tokens.custody("ceremony", "verify", str(folder))
    assert (verified["ok"], verified["problems"]) == (True, [])
    assert made["manifest_sha256"] == verified["manifest_sha256"]
