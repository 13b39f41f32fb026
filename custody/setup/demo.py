"""`custody demo seed`: a ready-to-try installation for the README tour (development only).

Creates a demo client whose private key is written under CUSTODY_HOME/demo (mode 0600) so the
tour can sign tokens; a real client keeps its private key to itself and registers only the
public key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from custody.errors import CustodyError
from custody.hsm.keys import Algorithm, Backup
from custody.keys import repository as key_repo
from custody.keys import service as key_service
from custody.policy.loader import load_policy_file
from custody.policy_versions.service import active_policy, apply
from custody.runtime import Runtime
from custody.settings import Environment
from custody.setup.init import token_label
from custody.store.models import Client
from custody.wallets import repository, service

DEMO_KEY = "hot-eth-key"
DEMO_WALLET = "hot-eth"
DEMO_CLIENT = "demo-desk"
DEMO_POLICY = Path(__file__).resolve().parents[2] / "policies" / "demo.yaml"


@dataclass(frozen=True)
class DemoInstallation:
    client_id: str
    client_key_path: Path
    wallet: str
    address: str
    policy_digest: str


def seed(runtime: Runtime, actor: str) -> DemoInstallation:
    if runtime.settings.environment is Environment.PRODUCTION:
        raise CustodyError("refusing to seed demo data in production", status=400)
    demo_dir = runtime.settings.home / "demo"
    demo_dir.mkdir(mode=0o700, exist_ok=True)
    key_path = demo_dir / "client-private.pem"
    private = _client_key(key_path)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (demo_dir / "client-public.pem").write_bytes(public_pem)
    _ensure_key(runtime, actor)
    loaded = load_policy_file(DEMO_POLICY)
    with runtime.db.write() as session:
        if repository.find_wallet(session, DEMO_WALLET) is None:
            service.create_wallet(
                session, name=DEMO_WALLET, chain_name="ethereum", key_label=DEMO_KEY, actor=actor
            )
        client = session.execute(
            select(Client).where(Client.name == DEMO_CLIENT)
        ).scalar_one_or_none()
        if client is None:
            from custody.clients.service import add_client

            client = add_client(session, name=DEMO_CLIENT, public_key_pem=public_pem, actor=actor)
        current = active_policy(session)
        if current is None or current.digest != loaded.digest:
            apply(session, loaded, source_name=DEMO_POLICY.name, actor=actor)
        wallet = repository.wallet_by_name(session, DEMO_WALLET)
        (demo_dir / "client-id").write_text(client.id + "\n")
        return DemoInstallation(client.id, key_path, DEMO_WALLET, wallet.address, loaded.digest)


def _client_key(path: Path) -> Ed25519PrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return key
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return key


def _ensure_key(runtime: Runtime, actor: str) -> None:
    with runtime.db.read() as session:
        if DEMO_KEY in {k.label for k in key_repo.keys(session)}:
            return
    # Backup-able, as `custody keys generate` makes wallet keys: the README tour backs it up.
    info = runtime.token().generate_key(DEMO_KEY, Algorithm.SECP256K1, backup=Backup.TRUSTED_WRAP)
    with runtime.db.write() as session:
        key_service.record_key(
            session, info=info, token=token_label(runtime), backup=Backup.TRUSTED_WRAP, actor=actor
        )
