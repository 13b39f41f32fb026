"""A test installation: settings, runtime and factories for keys, wallets, clients, policies."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from custody.clients.service import add_client
from custody.hsm import Algorithm, DevToken
from custody.hsm.devtoken import find_softhsm_module
from custody.keys import service as key_service
from custody.policy import load_policy_text
from custody.policy_versions.service import apply
from custody.runtime import Runtime
from custody.settings import Settings, load_settings
from custody.setup.init import initialise
from custody.store.models import LedgerEntry, Request
from custody.wallets import service as wallet_service


@dataclass(frozen=True)
class ClientKeys:
    id: str
    name: str
    private_key: Ed25519PrivateKey

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass(frozen=True)
class WalletInfo:
    name: str
    address: str
    key_label: str


@dataclass
class Installation:
    home: Path
    backend: str
    settings: Settings
    runtime: Runtime
    env: dict[str, str] = field(default_factory=dict)

    # -- factories ---------------------------------------------------------------------------

    def client(self, name: str | None = None) -> ClientKeys:
        key = Ed25519PrivateKey.generate()
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with self.runtime.db.write() as session:
            client = add_client(
                session,
                name=name or f"desk-{secrets.token_hex(4)}",
                public_key_pem=pem,
                actor="test",
            )
            return ClientKeys(client.id, client.name, key)

    def wallet(self, chain: str = "ethereum", name: str | None = None) -> WalletInfo:
        label = f"k-{self.backend}-{secrets.token_hex(5)}"
        info = self.runtime.token().generate_key(label, Algorithm.SECP256K1)
        with self.runtime.db.write() as session:
            key_service.record_key(
                session, info=info, token=self.settings.hsm_token or "", actor="test"
            )
            wallet = wallet_service.create_wallet(
                session,
                name=name or f"w-{secrets.token_hex(5)}",
                chain_name=chain,
                key_label=label,
                actor="test",
            )
            return WalletInfo(wallet.name, wallet.address, label)

    def apply_policy(self, text: str, name: str = "test.yaml") -> str:
        loaded = load_policy_text(text, name)
        with self.runtime.db.write() as session:
            apply(session, loaded, source_name=name, actor="test")
        return loaded.digest

    def allow_all_policy(self) -> str:
        return self.apply_policy(
            "version: 1\nrules:\n  - {id: allow-all, match: {type: withdrawal}, action: allow}\n"
        )

    # -- observations ------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        with self.runtime.db.read() as session:
            return {
                "requests": session.execute(select(func.count()).select_from(Request)).scalar_one(),
                "ledger": session.execute(
                    select(func.count()).select_from(LedgerEntry)
                ).scalar_one(),
            }

    def ledger_entries(self, kind: str | None = None) -> list[dict[str, Any]]:
        import json

        with self.runtime.db.read() as session:
            query = select(LedgerEntry).order_by(LedgerEntry.index)
            if kind is not None:
                query = query.where(LedgerEntry.kind == kind)
            return [json.loads(row.entry) for row in session.execute(query).scalars()]

    def close(self) -> None:
        self.runtime.close()


def installation_env(home: Path, token: DevToken, database_url: str | None) -> dict[str, str]:
    """Environment for a `custody` subprocess using this installation and the session token."""
    env = {
        "CUSTODY_HOME": str(home),
        "CUSTODY_HSM_MODULE": token.module_path,
        "CUSTODY_HSM_TOKEN": token.label,
        "CUSTODY_HSM_PIN_FILE": str(token.pin_file),
        "CUSTODY_LEDGER_KEY_LABEL": f"ledger-{home.name}",
        "SOFTHSM2_CONF": str(token.conf_path),
    }
    if database_url:
        env["CUSTODY_DATABASE_URL"] = database_url
    return env


def make_installation(
    home: Path, token: DevToken, *, database_url: str | None, backend: str
) -> Installation:
    env = installation_env(home, token, database_url)
    settings = load_settings(
        home,
        database_url=database_url,
        hsm_module=find_softhsm_module(),
        hsm_token=token.label,
        hsm_pin_file=token.pin_file,
        ledger_key_label=env["CUSTODY_LEDGER_KEY_LABEL"],
        worker_poll_seconds=0.05,
    )
    initialise(settings)
    return Installation(
        home=home, backend=backend, settings=settings, runtime=Runtime(settings), env=env
    )
