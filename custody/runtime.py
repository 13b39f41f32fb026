"""What a running custody process holds: settings, the database and (lazily) the HSM token.

The token is opened on first use in the process that uses it, never inherited across a fork:
PKCS#11 libraries must be initialised after fork.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from custody.errors import Unavailable
from custody.settings import Settings
from custody.settings.config import DEV_TOKEN_LABEL
from custody.store import Database, DatabaseTimeouts

if TYPE_CHECKING:
    from custody.hsm.pkcs11 import Pkcs11Token


@dataclass(frozen=True)
class HsmCredentials:
    module: str
    token: str
    pin: str

    def __repr__(self) -> str:  # never show the PIN, even in a traceback
        return f"HsmCredentials(module={self.module!r}, token={self.token!r}, pin=<hidden>)"


def hsm_credentials(settings: Settings) -> HsmCredentials:
    """Production names its HSM explicitly; development uses the token under CUSTODY_HOME."""
    from custody.hsm.devtoken import find_softhsm_module, read_pin_file

    if settings.uses_dev_token:
        conf = settings.hsm_dir / "softhsm2.conf"
        pins = settings.hsm_dir / "pins.json"
        if not conf.exists() or not pins.exists():
            raise Unavailable(
                f"no development HSM token under {settings.hsm_dir}; run `custody init` first"
            )
        os.environ["SOFTHSM2_CONF"] = str(conf)
        return HsmCredentials(
            find_softhsm_module(), settings.hsm_token or DEV_TOKEN_LABEL, read_pin_file(pins)
        )
    assert settings.hsm_module is not None
    return HsmCredentials(settings.hsm_module, settings.hsm_token or "", _production_pin(settings))


def _production_pin(settings: Settings) -> str:
    from custody.hsm.devtoken import read_pin_file

    if settings.hsm_pin is not None:
        return settings.hsm_pin.get_secret_value()
    if settings.hsm_pin_file is not None:
        return read_pin_file(Path(settings.hsm_pin_file))
    raise Unavailable("set CUSTODY_HSM_PIN or CUSTODY_HSM_PIN_FILE")


class Runtime:
    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.settings = settings
        self.db = db or Database(
            settings.resolved_database_url, timeouts=database_timeouts(settings)
        )
        self._token: Pkcs11Token | None = None
        self._token_pid: int | None = None
        self._lock = threading.Lock()
        self._signer_wake: threading.Event | None = None

    def attach_signer(self, wake: threading.Event) -> None:
        self._signer_wake = wake

    def notify_signer(self) -> None:
        """Wake an in-process signer now instead of at its next poll."""
        if self._signer_wake is not None:
            self._signer_wake.set()

    def token(self) -> Pkcs11Token:
        from custody.hsm.pkcs11 import Pkcs11Token

        with self._lock:
            if self._token is None or self._token_pid != os.getpid():
                creds = hsm_credentials(self.settings)
                self._token = Pkcs11Token(creds.module, creds.token, creds.pin)
                self._token_pid = os.getpid()
            return self._token

    def preflight(self) -> None:
        """Open and log in to the token, and find the ledger key, before accepting any work:
        `custody serve` and `custody worker` stop with one clear line instead of accepting
        requests they cannot sign (a wrong PIN or module path, a missing token)."""
        self.token().get_key(self.settings.ledger_key_label)

    def close(self) -> None:
        with self._lock:
            if self._token is not None and self._token_pid == os.getpid():
                self._token.close()
            self._token = None
        self.db.dispose()


def database_timeouts(settings: Settings) -> DatabaseTimeouts:
    """How long this process waits on its database (custody.store.database)."""
    return DatabaseTimeouts(
        connect_seconds=settings.database_connect_timeout_seconds,
        statement_seconds=settings.database_statement_timeout_seconds,
        pool_seconds=settings.database_pool_timeout_seconds,
        liveness_seconds=settings.database_liveness_seconds,
    )
