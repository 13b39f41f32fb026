"""What a running custody process holds: settings, the database and (lazily) the HSM token.

The token is opened on first use in the process that uses it, never inherited across a fork:
PKCS#11 libraries must be initialised after fork. After an HSM fault `recover_token` starts over
(custody.hsm.pkcs11.library.reload); a refused PIN holds every later login of the installation
(custody.hsmhealth.holds) instead.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import event

from custody import wakeup
from custody.errors import CustodyError, Unavailable
from custody.hsm.errors import HsmError, LoginHeld, PinIncorrect
from custody.hsmhealth import holds
from custody.settings import Settings
from custody.settings.config import DEV_TOKEN_LABEL
from custody.store import Database, DatabaseTimeouts

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from custody.hsm.pkcs11 import Pkcs11Token
    from custody.hsm.pkcs11.wrapping import KeyCeremony

log = logging.getLogger("custody.hsm")


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


def token_label_of(settings: Settings) -> str:
    """The label of the token this installation signs with (no PIN is read for it)."""
    return settings.hsm_token or (DEV_TOKEN_LABEL if settings.uses_dev_token else "")


def process_name() -> str:
    """This process as ledger entries and status reports name it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _production_pin(settings: Settings) -> str:
    from custody.hsm.devtoken import read_pin_file

    if settings.hsm_pin is not None:
        return settings.hsm_pin.get_secret_value()
    if settings.hsm_pin_file is not None:
        return read_pin_file(Path(settings.hsm_pin_file))
    raise Unavailable("set CUSTODY_HSM_PIN or CUSTODY_HSM_PIN_FILE")


def hsm_so_pin(settings: Settings) -> str:
    """The token's security officer PIN, for a backup ceremony only: from the dev token's
    pins.json, or CUSTODY_HSM_SO_PIN / CUSTODY_HSM_SO_PIN_FILE (never an argument)."""
    from custody.hsm.devtoken import read_so_pin_file

    if settings.uses_dev_token:
        return read_so_pin_file(settings.hsm_dir / "pins.json")
    if settings.hsm_so_pin is not None:
        return settings.hsm_so_pin.get_secret_value()
    if settings.hsm_so_pin_file is not None:
        return read_so_pin_file(Path(settings.hsm_so_pin_file))
    raise Unavailable(
        "a backup ceremony needs the HSM security officer's PIN: set CUSTODY_HSM_SO_PIN_FILE "
        "(or CUSTODY_HSM_SO_PIN) for this command"
    )


RECOVERY_INTERVAL_SECONDS = 1.0


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
        # Long polls of this process (GET /v1/requests/{id}?wait=S), woken by status changes
        self.changes = wakeup.Changes()
        event.listen(self.db.write_sessions, "after_commit", self._after_commit)
        self._fault: HsmError | None = None  # the last HSM fault; the next use starts over
        self._last_recovery = 0.0

    def attach_signer(self, wake: threading.Event) -> None:
        self._signer_wake = wake

    def notify_signer(self) -> None:
        """Wake a signer now instead of at its next poll: one in this process, and the signer
        processes on this host (custody.wakeup)."""
        if self._signer_wake is not None:
            self._signer_wake.set()
        wakeup.ring(self.settings.home)

    def _after_commit(self, session: Session) -> None:
        """A committed status change wakes the long polls of this process and of every API
        process on this host (custody.wakeup)."""
        if session.info.pop(wakeup.STATUS_CHANGED, False):
            self.changes.set()
            wakeup.ring(self.settings.home, wakeup.Kind.WATCHER)

    def token(self) -> Pkcs11Token:
        """The logged-in token of this process, opened on first use, and opened afresh after
        an HSM fault (see `recover_token`).

        Opening it logs in, so it is refused without calling the HSM while a login hold is on
        the token; a refused PIN places that hold (PinIncorrect is raised either way).
        """
        with self._lock:
            if self._token_pid != os.getpid():
                self._token, self._fault = None, None  # a parent's token is not ours to use
            if self._fault is not None:
                self._recover_locked()
            elif self._token is None:
                self._token = self._open()
                self._token_pid = os.getpid()
            assert self._token is not None
            return self._token

    def recover_token(self) -> Pkcs11Token:
        """Drop the session, reset the PKCS#11 library and log in again.

        A token that went away and came back is seen again only this way. Raises HsmError while
        it is still away; the caller tries again later.
        """
        with self._lock:
            self._fault = self._fault or HsmError("recovery asked for")
            self._last_recovery = 0.0
            self._recover_locked()
            assert self._token is not None
            return self._token

    def hsm_fault(self, error: HsmError) -> None:
        """Hear of a failed HSM call that may succeed later; the next use starts over."""
        self._fault = error

    def _recover_locked(self) -> None:
        from custody.hsm.pkcs11.library import reload

        fault = self._fault
        assert fault is not None
        # Every component of the process shares this token: one reset per second at most,
        # however many of them ask while the HSM is away.
        if time.monotonic() - self._last_recovery < RECOVERY_INTERVAL_SECONDS:
            raise HsmError(f"waiting to retry the HSM after: {fault.message}")
        self._last_recovery = time.monotonic()
        old, self._token = self._token, None
        if old is not None and self._token_pid == os.getpid():
            old.close()
        creds = hsm_credentials(self.settings)
        self._check_hold(creds.token)  # before touching the HSM at all
        reload(creds.module)
        self._token = self._open()
        self._token_pid = os.getpid()
        self._fault = None
        log.info("HSM token %r opened again after: %s", creds.token, fault.message)

    def _open(self) -> Pkcs11Token:
        from custody.hsm.pkcs11 import Pkcs11Token

        creds = hsm_credentials(self.settings)
        self._check_hold(creds.token)
        try:
            return Pkcs11Token(creds.module, creds.token, creds.pin, on_fault=self.hsm_fault)
        except PinIncorrect as exc:
            self._place_hold(creds.token, exc)
            raise
        except HsmError as exc:
            if exc.retryable:
                self._fault = exc  # the next attempt resets the library first
            raise

    def _check_hold(self, token_label: str) -> None:
        """Refuse to log in while a hold is on the token (or cannot be looked up: a login that
        might be refused again is not worth an HSM's PIN)."""
        try:
            with self.db.read() as session:
                hold = holds.hold_on(session, token_label)
        except CustodyError as exc:
            raise Unavailable(f"cannot check the HSM login hold: {exc.message}") from exc
        if hold is not None:
            raise LoginHeld(token_label, hold.since)

    def _place_hold(self, token_label: str, refusal: PinIncorrect) -> None:
        """Hold every later login, and say so in the refusal itself (whoever reports it)."""
        reason = refusal.message
        try:
            with self.db.write() as session:
                holds.place(session, token_label, reason=reason, held_by=process_name())
        except CustodyError as exc:
            log.error("could not record the HSM login hold: %s", exc.message)
        refusal.message = f"{reason}; no process logs in again until `custody hsm rearm`"
        refusal.args = (refusal.message,)

    @property
    def token_label(self) -> str:
        return self.settings.hsm_token or DEV_TOKEN_LABEL

    def key_ceremony(self, kek: bytes, *, backup: bool) -> KeyCeremony:
        """A ceremony's own session on the token holding `kek` (custody.hsm.pkcs11.wrapping):
        for a backup the security officer imports it as a trusted wrapping key, so it must open
        before this process uses the token for anything else; a restore needs no SO."""
        from custody.hsm.pkcs11.wrapping import KeyCeremony

        creds = hsm_credentials(self.settings)
        if backup:
            so_pin = hsm_so_pin(self.settings)
            return KeyCeremony.for_backup(
                creds.module, creds.token, user_pin=creds.pin, so_pin=so_pin, kek=kek
            )
        return KeyCeremony.for_restore(creds.module, creds.token, user_pin=creds.pin, kek=kek)

    def preflight(self) -> None:
        """Open and log in to the token, and find the ledger key, before accepting any work:
        `custody serve` and `custody worker` stop with one clear line instead of accepting
        requests they cannot sign (a wrong PIN or module path, a missing token)."""
        self.token().get_key(self.settings.ledger_key_label)

    def close(self) -> None:
        with self._lock:
            self._fault = None
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
