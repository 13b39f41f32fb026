"""A test installation: settings, runtime and factories for keys, wallets, clients, policies."""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from custody.approvals.approvers import Permission, set_permission
from custody.clients.service import add_client
from custody.hsm import Algorithm, Backup, DevToken
from custody.hsm.devtoken import find_softhsm_module
from custody.keys import repository as key_repo
from custody.keys import service as key_service
from custody.policy import load_policy_text
from custody.policy_versions.service import apply
from custody.runtime import Runtime
from custody.seals.hooks import install as install_seal_hooks
from custody.settings import Settings, load_settings
from custody.settings.config import TokenSettings
from custody.setup.init import ensure_home, initialise
from custody.store.database import tighten_private
from custody.store.models import LedgerEntry, Request
from custody.wallets import service as wallet_service
from tests.support.postgres import PostgresServer


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

    def client(self, name: str | None = None, *, role: str = "trading") -> ClientKeys:
        key = Ed25519PrivateKey.generate()
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with self.runtime.db.write() as session:
            client = add_client(
                session,
                name=name or f"{'desk' if role == 'trading' else role}-{secrets.token_hex(4)}",
                public_key_pem=pem,
                actor="test",
                role=role,
            )
            return ClientKeys(client.id, client.name, key)

    def wallet(
        self,
        chain: str = "ethereum",
        name: str | None = None,
        *,
        backup: Backup = Backup.NONE,
        token: str | None = None,
    ) -> WalletInfo:
        """A wallet of a new key, on the main token or the token labelled `token`."""
        label = f"k-{self.backend}-{secrets.token_hex(5)}"
        token = token or self.settings.hsm_token or ""
        info = self.runtime.token_for(token).generate_key(label, Algorithm.SECP256K1, backup=backup)
        with self.runtime.db.write() as session:
            key_service.record_key(session, info=info, token=token, backup=backup, actor="test")
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

    def grant_maker(self, group: str = "makers") -> str:
        """Let the members of `group` start withdrawals in the approver app."""
        with self.runtime.db.write() as session:
            set_permission(
                session, group=group, permission=Permission.MAKER, granted=True, actor="test"
            )
        return group

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

    def add_tokens(self, tokens: dict[str, DevToken]) -> None:
        """Configure these extra tokens (`[tokens.NAME]`, by name), as custody.toml would: a new
        runtime, and CUSTODY_TOKENS for commands run with `env`. They must be tokens of the
        session's SoftHSM configuration (tests/conftest.py), the only one this process sees."""
        extra = {
            name: {"label": token.label, "pin_file": str(token.pin_file)}
            for name, token in tokens.items()
        }
        self.runtime.close()
        self.settings = self.settings.model_copy(
            update={"tokens": {n: TokenSettings(**t) for n, t in extra.items()}}  # type: ignore[arg-type]
        )
        self.runtime = Runtime(self.settings)
        install_seal_hooks(self.runtime)
        self.env = {**self.env, "CUSTODY_TOKENS": json.dumps(extra)}

    def close(self) -> None:
        self.runtime.close()


def installation_env(
    home: Path, token: DevToken, database_url: str | None, ledger_key_label: str | None = None
) -> dict[str, str]:
    """Environment for a `custody` command using this installation and the session token."""
    env = {
        "CUSTODY_HOME": str(home),
        "CUSTODY_HSM_MODULE": token.module_path,
        "CUSTODY_HSM_TOKEN": token.label,
        "CUSTODY_HSM_PIN_FILE": str(token.pin_file),
        "CUSTODY_LEDGER_KEY_LABEL": ledger_key_label or f"ledger-{home.name}",
        "SOFTHSM2_CONF": str(token.conf_path),
    }
    if database_url:
        env["CUSTODY_DATABASE_URL"] = database_url
    return env


def make_installation(
    home: Path,
    token: DevToken,
    *,
    database_url: str | None,
    backend: str,
    ledger_key_label: str | None = None,
) -> Installation:
    """`custody init` in `home`, and the installation it made."""
    return _open_installation(home, token, database_url, backend, ledger_key_label, initialise)


def _open_installation(
    home: Path,
    token: DevToken,
    database_url: str | None,
    backend: str,
    ledger_key_label: str | None,
    prepare: Callable[[Settings], object],
) -> Installation:
    """The installation in `home`, once `prepare` has made it ready (`initialise`, or less)."""
    env = installation_env(home, token, database_url, ledger_key_label)
    settings = load_settings(
        home,
        database_url=database_url,
        hsm_module=find_softhsm_module(),
        hsm_token=token.label,
        hsm_pin_file=token.pin_file,
        ledger_key_label=env["CUSTODY_LEDGER_KEY_LABEL"],
        worker_poll_seconds=0.05,
    )
    prepare(settings)
    runtime = Runtime(settings)
    install_seal_hooks(runtime)  # as every custody process that changes configuration does
    return Installation(home=home, backend=backend, settings=settings, runtime=runtime, env=env)


class InstallationFactory:
    """Fresh installations, one per call, for tests that change what they are given (tamper with
    the ledger, drop triggers, govern policies).

    `custody init` runs once per backend to make a template; each installation starts from a copy
    of the template's database (SQLite's backup API; PostgreSQL's CREATE DATABASE ... TEMPLATE)
    and is opened as it is. `initialise` would find everything in place and change nothing in
    the copy (its keys are on the token, its seal, chains and checkpoint in the database): of
    what it does, only the home's custody.toml and the database file's mode are done here. The
    copies share the template's ledger key label, as installations on the shared session token
    may.

    PostgreSQL's copies are made and dropped on threads of the factory's own, off the tests'
    path: each takes the server up to a second (files copied and fsynced), much of it waiting
    for the disk. The next copies are made while tests run; a discarded one is dropped while the
    next tests run. A copy is taken once, by one installation; nobody connects to the template.
    """

    def __init__(self, root: Path, token: DevToken, postgres: PostgresServer | None) -> None:
        self._root = root
        self._token = token
        self._postgres = postgres
        self._templates: dict[str, tuple[str | None, str]] = {}
        self._made: list[Installation] = []
        self._template_keys: set[str] = set()  # on the session token, shared by every copy
        # Two copies made ahead, side by side: the server spends much of a copy (~0.4 s) waiting
        # for fsync, and one at a time could not keep up with tests shorter than that (in
        # tests/ledger, 55 s -> 39 s). Drops wait on a thread of their own; those still queued
        # when the session ends are waited for then.
        self._copier = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pg-copies")
        self._dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-drops")
        self._spares: list[Future[str]] = []
        self._drops: list[Future[None]] = []

    def make(self, backend: str) -> Installation:
        database_url, ledger_key_label = self._template(backend)
        home = self._root / f"{backend}-{secrets.token_hex(4)}"
        home.mkdir()
        if database_url is None:
            _copy_sqlite(self._root / f"template-{backend}" / "custody.db", home / "custody.db")
        else:
            database_url = self._pg_copy(database_url)
        inst = _open_installation(
            home, self._token, database_url, backend, ledger_key_label, _as_initialised
        )
        self._made.append(inst)
        return inst

    def discard(self, inst: Installation) -> None:
        """Close it and drop its PostgreSQL database (on the factory's thread for drops: nothing
        reads a discarded installation again, and its name is never used twice)."""
        self._made.remove(inst)
        _destroy_keys_made(inst, keep=self._template_keys)
        inst.close()
        if inst.backend == "postgres":
            url = inst.settings.resolved_database_url
            self._drops.append(self._dropper.submit(self._pg().drop_database, url))

    def close(self) -> None:
        for inst in list(self._made):
            self.discard(inst)
        for spare in self._spares:
            self._drops.append(self._dropper.submit(self._pg().drop_database, spare.result()))
        self._spares = []
        self._copier.shutdown(wait=True)
        self._dropper.shutdown(wait=True)
        for drop in self._drops:
            drop.result()  # a drop that failed fails the session (it used to fail its test)
        for database_url, _ in self._templates.values():
            if database_url is not None:
                self._pg().drop_database(database_url)

    def _pg_copy(self, template_url: str) -> str:
        """A copy of the PostgreSQL template of its own: the oldest made ahead, when there is
        one; and the next ones are started."""
        spare = self._spares.pop(0) if self._spares else None
        url = spare.result() if spare is not None else self._pg().create_database(template_url)
        while len(self._spares) < 2:
            self._spares.append(self._copier.submit(self._pg().create_database, template_url))
        return url

    def _template(self, backend: str) -> tuple[str | None, str]:
        if backend not in self._templates:
            database_url = self._pg().create_database() if backend == "postgres" else None
            template = make_installation(
                self._root / f"template-{backend}",
                self._token,
                database_url=database_url,
                backend=backend,
            )
            self._template_keys |= _key_labels(template)
            # No connection may stay open: PostgreSQL copies only a database nobody uses.
            template.close()
            self._templates[backend] = (database_url, template.settings.ledger_key_label)
        return self._templates[backend]

    def _pg(self) -> PostgresServer:
        assert self._postgres is not None, "no PostgreSQL server for this factory"
        return self._postgres


@contextmanager
def allow_all_installation(
    factory: InstallationFactory, backend: str = "sqlite"
) -> Iterator[Installation]:
    """A fresh installation of the caller's own with the allow-all policy, discarded after."""
    inst = factory.make(backend)
    inst.allow_all_policy()
    try:
        yield inst
    finally:
        factory.discard(inst)


def _key_labels(inst: Installation) -> set[str]:
    with inst.runtime.db.read() as session:
        return {key.label for key in key_repo.keys(session)}


def _destroy_keys_made(inst: Installation, keep: set[str]) -> None:
    """Destroy on their tokens the keys a discarded installation recorded, but those of its
    template: SoftHSM reads every object of a token on each search, so every key left behind
    slowed each later search of the session (with 600 keys left, tests/api took ~20% longer).
    Labels are the installation's own (random, or made by its test), so no other installation
    has them. Best effort: a test may have broken the database, the token or the key itself."""
    try:
        with inst.runtime.db.read() as session:
            made = {key.label: key.token for key in key_repo.keys(session) if key.label not in keep}
    except Exception:  # the installation is thrown away either way
        return
    for label, token in sorted(made.items()):
        with contextlib.suppress(Exception):
            inst.runtime.token_for(token).destroy_key(label)


def _as_initialised(settings: Settings) -> None:
    """What `initialise` changes in a copy of an initialised installation's database."""
    ensure_home(settings.home, settings.environment.value)
    tighten_private(settings.resolved_database_url)


def _copy_sqlite(source: Path, target: Path) -> None:
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)  # a consistent copy, whatever the write-ahead log holds
    finally:
        src.close()
        dst.close()
