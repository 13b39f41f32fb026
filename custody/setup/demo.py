"""`custody demo seed`: a ready-to-try installation for the README tour (development only).

Creates a demo client whose private key is written under CUSTODY_HOME/demo (mode 0600) so the
tour can sign tokens; a real client keeps its private key to itself and registers only the
public key.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from custody.broadcast.safe_deploy import deploy
from custody.catalog import chains as catalog
from custody.chains.evm.rpc import EvmNode, NodeUnavailable
from custody.chains.evm.safe_node import contracts_on
from custody.errors import CustodyError
from custody.hsm.keys import Algorithm, Backup
from custody.keys import repository as key_repo
from custody.keys import service as key_service
from custody.policy.loader import load_policy_text
from custody.policy_versions.service import active_policy, apply
from custody.runtime import Runtime
from custody.settings import Environment
from custody.setup.init import token_label
from custody.store.models import Client
from custody.wallets import repository, safes, service

DEMO_KEY = "hot-eth-key"
DEMO_WALLET = "hot-eth"
DEMO_CLIENT = "demo-desk"
# Package data, so `custody demo seed` works from an installed wheel as from a clone.
DEMO_POLICY = resources.files("custody.setup").joinpath("policies", "demo.yaml")


LOCAL_CHAIN = "local"
LOCAL_CHAIN_ID = 31337  # anvil's
LOCAL_WALLET = "local-eth"
# anvil's first development account, unlocked in anvil: it funds the demo's local wallet.
ANVIL_DEV_ACCOUNT = "0xf39Fd6e51aad88F6F4ce6aB8827279cfFFb92266"
LOCAL_FUNDS = 100 * 10**18
# A 2-of-3 Safe on the local chain, its owners on the demo's one token (a real installation puts
# each on its own: custody hsm add-token, keys generate --token), paid for by `local-eth`.
LOCAL_SAFE = "local-safe"
SAFE_OWNERS = ("safe-owner-1", "safe-owner-2", "safe-owner-3")
SAFE_FUNDS = 10 * 10**18
NODE_WAIT_SECONDS = 15.0


@dataclass(frozen=True)
class DemoInstallation:
    client_id: str
    client_key_path: Path
    wallet: str
    address: str
    policy_digest: str
    local_wallet: str | None = None
    local_safe: str | None = None


def seed(runtime: Runtime, actor: str, node_url: str | None = None) -> DemoInstallation:
    """`node_url`: a local anvil (chain id 31337); with it, a connected chain `local` and a
    funded wallet `local-eth` on it, with the same key."""
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
    loaded = load_policy_text(DEMO_POLICY.read_text(encoding="utf-8"), DEMO_POLICY.name)
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
        demo = DemoInstallation(client.id, key_path, DEMO_WALLET, wallet.address, loaded.digest)
    if node_url is None:
        return demo
    _seed_local_chain(runtime, actor, node_url)
    _seed_local_safe(runtime, actor, node_url)
    return dataclasses.replace(demo, local_wallet=LOCAL_WALLET, local_safe=LOCAL_SAFE)


def _seed_local_chain(runtime: Runtime, actor: str, node_url: str) -> None:
    with EvmNode(node_url, chain_name=LOCAL_CHAIN, chain_id=LOCAL_CHAIN_ID) as node:
        _wait_for(node)
        with runtime.db.write() as session:
            chain = catalog.find_chain(session, LOCAL_CHAIN)
            if chain is None:
                catalog.add_chain(
                    session,
                    name=LOCAL_CHAIN,
                    evm_chain_id=LOCAL_CHAIN_ID,
                    actor=actor,
                    node=catalog.NodeSettings(rpc_url=node_url, confirmations=1),
                )
            elif chain.rpc_url != node_url:
                catalog.set_chain(
                    session,
                    name=LOCAL_CHAIN,
                    node=catalog.NodeSettings(rpc_url=node_url),
                    actor=actor,
                )
            if repository.find_wallet(session, LOCAL_WALLET) is None:
                service.create_wallet(
                    session,
                    name=LOCAL_WALLET,
                    chain_name=LOCAL_CHAIN,
                    key_label=DEMO_KEY,
                    actor=actor,
                )
            address = repository.wallet_by_name(session, LOCAL_WALLET).address
        if node.balance(address) < LOCAL_FUNDS // 2:
            node.call(
                "eth_sendTransaction",
                [{"from": ANVIL_DEV_ACCOUNT, "to": address, "value": hex(LOCAL_FUNDS)}],
            )


def _seed_local_safe(runtime: Runtime, actor: str, node_url: str) -> None:
    for label in SAFE_OWNERS:
        _ensure_key(runtime, actor, label)
    with EvmNode(node_url, chain_name=LOCAL_CHAIN, chain_id=LOCAL_CHAIN_ID) as node:
        with runtime.db.read() as session:
            exists = repository.find_wallet(session, LOCAL_SAFE) is not None
        if not exists:
            contracts = contracts_on(node)
            with runtime.db.write() as session:
                safes.create_safe_wallet(
                    session,
                    name=LOCAL_SAFE,
                    chain_name=LOCAL_CHAIN,
                    owner_labels=list(SAFE_OWNERS),
                    threshold=2,
                    executor_name=LOCAL_WALLET,
                    contracts=contracts,
                    actor=actor,
                )
        with runtime.db.read() as session:
            wallet = repository.wallet_by_name(session, LOCAL_SAFE)
            deployed = safes.safe_setup(session, wallet).deployed
            address = wallet.address
        if not deployed:
            deploy(runtime, LOCAL_SAFE, actor=actor)
        if node.balance(address) < SAFE_FUNDS // 2:
            node.call(
                "eth_sendTransaction",
                [{"from": ANVIL_DEV_ACCOUNT, "to": address, "value": hex(SAFE_FUNDS)}],
            )


def _wait_for(node: EvmNode) -> None:
    """`make demo` starts anvil a moment before seeding: give it a few seconds."""
    deadline = time.monotonic() + NODE_WAIT_SECONDS
    while True:
        try:
            node.check_chain()
            return
        except NodeUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


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


def _ensure_key(runtime: Runtime, actor: str, label: str = DEMO_KEY) -> None:
    with runtime.db.read() as session:
        if label in {k.label for k in key_repo.keys(session)}:
            return
    # Backup-able, as `custody keys generate` makes wallet keys: the README tour backs it up.
    info = runtime.token().generate_key(label, Algorithm.SECP256K1, backup=Backup.TRUSTED_WRAP)
    with runtime.db.write() as session:
        key_service.record_key(
            session, info=info, token=token_label(runtime), backup=Backup.TRUSTED_WRAP, actor=actor
        )
