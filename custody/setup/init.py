"""`custody init`: make CUSTODY_HOME ready, idempotently.

Config file, database migrated to head, the development HSM token (development only), built-in
chains, and the ledger and webhook signing keys generated inside the HSM.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from custody.catalog.chains import ensure_builtin_chains
from custody.hsm.keys import Algorithm, Backup
from custody.keys import repository as key_repo
from custody.keys import service as key_service
from custody.runtime import Runtime
from custody.seals.hooks import install as install_seal_hooks
from custody.settings import Settings
from custody.store.database import tighten_private
from custody.store.migrate import upgrade_to_head

DEFAULT_CONFIG = """\
# custody configuration. Every key can be overridden by an environment variable of the same
# name in upper case with the prefix CUSTODY_ (e.g. database_url -> CUSTODY_DATABASE_URL).
# HSM PINs never go here: use CUSTODY_HSM_PIN or CUSTODY_HSM_PIN_FILE.

environment = "{environment}"
# database_url = "postgresql://custody@127.0.0.1:5432/custody"   # default: SQLite in this folder
host = "127.0.0.1"
port = 8000
"""


@dataclass
class InitReport:
    home: Path
    created_config: bool = False
    created_dev_token: bool = False
    added_chains: list[str] = field(default_factory=list)
    created_root_key: bool = False
    sealed_epoch: int | None = None
    created_ledger_key: bool = False
    created_webhook_key: bool = False
    checkpoint_size: int | None = None
    database_url: str = ""
    tightened: list[str] = field(default_factory=list)  # "<file> (was 0644)"
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "home": str(self.home),
            "created_config": self.created_config,
            "created_dev_token": self.created_dev_token,
            "added_chains": self.added_chains,
            "created_root_key": self.created_root_key,
            "configuration_seal": self.sealed_epoch,
            "created_ledger_key": self.created_ledger_key,
            "created_webhook_key": self.created_webhook_key,
            "checkpoint_size": self.checkpoint_size,
            "database": _redact(self.database_url),
            "tightened": self.tightened,
            "warnings": self.warnings,
        }


def ensure_home(home: Path, environment: str = "development") -> bool:
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = home / "custody.toml"
    if config.exists():
        return False
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(DEFAULT_CONFIG.format(environment=environment))
    return True


def home_warnings(home: Path) -> list[str]:
    """init never changes the mode of a folder the operator made (it may be shared on purpose),
    but says when others can look into it: the database, config and exports live there."""
    mode = stat.S_IMODE(home.stat().st_mode)
    if not mode & 0o077:
        return []
    return [
        f"CUSTODY_HOME {home} is open to group or others (mode {mode:04o}); "
        f"run `chmod 700 {home}` unless that is intended"
    ]


def initialise(settings: Settings) -> InitReport:
    report = InitReport(home=settings.home, database_url=settings.resolved_database_url)
    report.created_config = ensure_home(settings.home, settings.environment.value)
    report.warnings.extend(home_warnings(settings.home))
    if settings.uses_dev_token:
        from custody.hsm.devtoken import ensure_dev_token

        existed = (settings.hsm_dir / "pins.json").exists()
        ensure_dev_token(settings.hsm_dir, settings.hsm_token or "custody-dev")
        report.created_dev_token = not existed
    # Before any connection: SQLite gives the -wal and -shm files it creates the database's mode.
    report.tightened = [
        f"{path.name} (was {mode:04o})"
        for path, mode in tighten_private(settings.resolved_database_url)
    ]
    upgrade_to_head(settings.resolved_database_url)
    runtime = Runtime(settings)
    install_seal_hooks(runtime)
    try:
        # The root key first: every configuration change after it is sealed with it.
        report.created_root_key = _ensure_key(runtime, runtime.settings.root_key_label)
        warning = _first_seal(runtime)
        report.warnings.extend([warning] if warning else [])
        with runtime.db.write() as session:
            report.added_chains = ensure_builtin_chains(session, "operator:init")
        report.created_ledger_key = _ensure_key(runtime, runtime.settings.ledger_key_label)
        _ensure_app_client(runtime)
        report.created_webhook_key = _ensure_webhook_key(runtime)
        report.sealed_epoch = _newest_seal(runtime)
        report.checkpoint_size = _sign_checkpoint(runtime)
    finally:
        runtime.close()
    return report


def _ensure_key(runtime: Runtime, label: str) -> bool:
    """Generate an Ed25519 service key on the token (or adopt the one there) and record it."""
    with runtime.db.read() as session:
        known = label in {k.label for k in key_repo.keys(session)}
    if known:
        return False
    token = runtime.token()
    from custody.hsm.errors import KeyNotFound

    try:
        info = token.get_key(label)
    except KeyNotFound:
        info = token.generate_key(label, Algorithm.ED25519)
    with runtime.db.write() as session:
        key_service.record_key(
            session,
            info=info,
            token=token_label(runtime),
            backup=Backup.NONE,  # Ed25519 service keys cannot be wrapped on the token
            actor="operator:init",
        )
    return True


def _ensure_app_client(runtime: Runtime) -> None:
    """The approver app's client and its key in the HSM (makers' requests are signed with it)."""
    from custody.clients.service import ensure_internal_client

    label = runtime.settings.app_key_label
    _ensure_key(runtime, label)
    with runtime.db.write() as session:
        ensure_internal_client(
            session, public_key=runtime.token().get_key(label).public_key, actor="operator:init"
        )


def _first_seal(runtime: Runtime) -> str | None:
    """Seal the configuration of an installation never sealed before (or upgraded from before
    seals existed): whoever runs init with the HSM vouches for it, as for everything init sets
    up. Returns a warning when the ledger knows seals the table lacks."""
    from custody.seals import repository as seals
    from custody.seals.service import seal

    with runtime.db.write() as session:
        newest = seals.newest_seal(session)
        recorded = seals.newest_sealed_entry(session)
        if newest is None and recorded is not None:
            return (
                f"the ledger records configuration seal {recorded.get('epoch')} but no seal is "
                "stored: nothing will be signed until this is investigated and the configuration "
                "sealed again (`custody config seal --force --reason ...`)"
            )
        if newest is None:
            seal(
                session,
                runtime.token(),
                key_label=runtime.settings.root_key_label,
                actor="operator:init",
                reason="first seal, by custody init",
            )
        return None


def _newest_seal(runtime: Runtime) -> int | None:
    from custody.seals import repository as seals

    with runtime.db.read() as session:
        newest = seals.newest_seal(session)
        return None if newest is None else newest.epoch


def _sign_checkpoint(runtime: Runtime) -> int | None:
    """Sign what init recorded, so that `ledger verify` holds from the first minute (it refuses
    a ledger no checkpoint covers). None when nothing new was recorded."""
    from custody.freezes.breakers import freeze_on_fork
    from custody.ledger.checkpoints import make_checkpoint, runtime_identity

    made = make_checkpoint(
        runtime.db, runtime.token(), runtime_identity(runtime), on_fork=freeze_on_fork
    )
    return None if made is None else made.tree_size


def _ensure_webhook_key(runtime: Runtime) -> bool:
    from custody.webhooks.signing import ensure_key

    return ensure_key(runtime, actor="operator:init")[1]


def token_label(runtime: Runtime) -> str:
    return runtime.settings.hsm_token or "custody-dev"


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url
