"""What a running custody process holds: settings, the database and (lazily) the HSM token.

Each token (the main one and the extra `[tokens.NAME]`) is opened on first use in the process
that uses it, never inherited across a fork: PKCS#11 libraries must be initialised after fork.
After an HSM fault `recover_token` starts that token over (custody.hsm.pkcs11.library.reload,
which reopens the other tokens' sessions too); a refused PIN holds every later login to that
token (custody.hsmhealth.holds) instead, and only to that token.
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
from custody.errors import CustodyError, Unavailable, ValidationFailed
from custody.hsm.errors import HsmError, LoginHeld, PinIncorrect
from custody.hsmhealth import holds
from custody.settings import Settings
from custody.settings.config import DEV_TOKEN_LABEL
from custody.store import Database, DatabaseTimeouts
from custody.store.database import DEFAULT_CONNECTIONS

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


def hsm_credentials(settings: Settings, token_label: str | None = None) -> HsmCredentials:
    """Production names its HSM explicitly; development uses the token under CUSTODY_HOME.

    `token_label`: one of the extra tokens (`[tokens.NAME]`) instead of the main one; they are
    slots of the same module, each with its own PIN source.
    """
    from custody.hsm.devtoken import find_softhsm_module, read_pin_file

    extra = _extra_token(settings, token_label)
    if settings.uses_dev_token:
        conf = settings.hsm_dir / "softhsm2.conf"
        pins = settings.hsm_dir / "pins.json"
        if not conf.exists() or not pins.exists():
            raise Unavailable(
                f"no development HSM token under {settings.hsm_dir}; run `custody init` first"
            )
        os.environ["SOFTHSM2_CONF"] = str(conf)
        module = find_softhsm_module()
        if extra is None:
            return HsmCredentials(module, settings.main_token_label, read_pin_file(pins))
    else:
        assert settings.hsm_module is not None
        module = settings.hsm_module
        if extra is None:
            return HsmCredentials(module, settings.hsm_token or "", _production_pin(settings))
    return HsmCredentials(module, extra[0], _extra_pin(settings, *extra))


def token_label_of(settings: Settings) -> str:
    """The label of the main token of this installation (no PIN is read for it)."""
    return settings.hsm_token or (DEV_TOKEN_LABEL if settings.uses_dev_token else "")


def token_labels(settings: Settings) -> list[str]:
    """Every token this installation signs with: the main one first."""
    return [settings.main_token_label, *settings.extra_token_labels.values()]


def resolve_token(settings: Settings, name_or_label: str | None) -> str:
    """The label of the token an operator named (by its `[tokens.NAME]` name or its label);
    None names the main token. Unknown: one line saying which tokens there are."""
    if name_or_label is None or name_or_label == settings.main_token_label:
        return settings.main_token_label
    extra = settings.extra_token_labels
    if name_or_label in extra:
        return extra[name_or_label]
    if name_or_label in extra.values():
        return name_or_label
    raise UnknownToken(
        f"token {name_or_label!r} is not configured (tokens: "
        f"{', '.join(token_labels(settings))}); add it with `custody hsm add-token "
        f"{name_or_label}` in development, or as [tokens.{name_or_label}] in custody.toml"
    )


class UnknownToken(ValidationFailed):
    slug = "hsm-token-unknown"
    title = "Unknown HSM token"


def _extra_token(settings: Settings, token_label: str | None) -> tuple[str, str] | None:
    """(label, name) of an extra token, or None for the main one."""
    if token_label is None or token_label == settings.main_token_label:
        return None
    for name, label in settings.extra_token_labels.items():
        if label == token_label:
            return label, name
    raise UnknownToken(f"token {token_label!r} is not configured")


def _extra_pin(settings: Settings, label: str, name: str) -> str:
    """An HsmError when the PIN cannot be read: requests of keys on that token wait for the
    operator to fix it, as for a token that is away, and the other tokens sign on."""
    from custody.hsm.devtoken import read_pin_file

    token = settings.tokens[name]
    if token.pin_env is not None:
        pin = os.environ.get(token.pin_env)
        if not pin:
            raise HsmError(f"token {label!r}: set {token.pin_env} to its PIN")
        return pin
    assert token.pin_file is not None
    path = token.pin_file if token.pin_file.is_absolute() else settings.home / token.pin_file
    if not path.exists():
        raise HsmError(f"token {label!r}: its PIN file {path} does not exist")
    return read_pin_file(path)


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


@dataclass
class _Session:
    """One token's logged-in session in this process, and what the next use must do first."""

    token: Pkcs11Token | None = None
    pid: int | None = None
    fault: HsmError | None = None  # the last HSM fault; the next use starts over
    last_recovery: float = 0.0


class Runtime:
    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        self.settings = settings
        self.db = db or Database(
            settings.resolved_database_url, timeouts=database_timeouts(settings)
        )
        self._sessions = {label: _Session() for label in token_labels(settings)}
        self._lock = threading.Lock()
        self._signer_wake: threading.Event | None = None
        # Long polls of this process (GET /v1/requests/{id}?wait=S), woken by status changes
        self.changes = wakeup.Changes()
        event.listen(self.db.write_sessions, "after_commit", self._after_commit)

    def attach_signer(self, wake: threading.Event) -> None:
        self._signer_wake = wake

    def notify_signer(self) -> None:
        """Wake a signer now instead of at its next poll: one in this process, and the signer
        processes on this host (custody.wakeup)."""
        if self._signer_wake is not None:
            self._signer_wake.set()
        wakeup.ring(self.settings.home)

    def _after_commit(self, session: Session) -> None:
        """A committed status change wakes the long polls on the requests it changed, in this
        process and in every API process on this host (custody.wakeup)."""
        changed: set[str] | None = session.info.pop(wakeup.STATUS_CHANGED, None)
        if changed:
            self.changes.changed(changed)
            wakeup.ring(self.settings.home, wakeup.Kind.WATCHER, changed)

    def token(self) -> Pkcs11Token:
        """The logged-in main token of this process (see `token_for`)."""
        return self.token_for(self.token_label)

    def token_for(self, token_label: str) -> Pkcs11Token:
        """The logged-in session on the token a key row names (`keys.token`), opened on first
        use, and opened afresh after an HSM fault (see `recover_token`). A label that is not
        one of the extra tokens is the main token's: keys made before there were several.

        Opening it logs in, so it is refused without calling the HSM while a login hold is on
        the token; a refused PIN places that hold (PinIncorrect is raised either way).
        """
        label = self.route(token_label)
        with self._lock:
            state = self._session_locked(label)
            if state.fault is not None:
                self._recover_locked(label)
            elif state.token is None or state.token.ended:
                state.token = self._open(label)
                state.pid = os.getpid()
            assert state.token is not None
            return state.token

    def route(self, token_label: str) -> str:
        return token_label if token_label in self._sessions else self.token_label

    def recover_token(self, token_label: str | None = None) -> Pkcs11Token:
        """Drop the session, reset the PKCS#11 library and log in again.

        A token that went away and came back is seen again only this way. Raises HsmError while
        it is still away; the caller tries again later. The reset ends every token's session,
        so the others that were open are opened again at once (a failure there is theirs).
        """
        label = self.route(token_label or self.token_label)
        with self._lock:
            state = self._session_locked(label)
            state.fault = state.fault or HsmError("recovery asked for")
            state.last_recovery = 0.0
            self._recover_locked(label)
            assert state.token is not None
            return state.token

    def hsm_fault(self, error: HsmError, token_label: str | None = None) -> None:
        """Hear of a failed HSM call that may succeed later; the next use starts over."""
        self._sessions[self.route(token_label or self.token_label)].fault = error

    def _session_locked(self, label: str) -> _Session:
        for state in self._sessions.values():
            if state.pid is not None and state.pid != os.getpid():
                # A parent's sessions are not ours to use (nor to close).
                state.token, state.pid, state.fault = None, None, None
        return self._sessions[label]

    def _recover_locked(self, label: str) -> None:
        from custody.hsm.pkcs11.library import reload

        state = self._sessions[label]
        fault = state.fault
        assert fault is not None
        # Every component of the process shares this token: one reset per second at most,
        # however many of them ask while the HSM is away.
        if time.monotonic() - state.last_recovery < RECOVERY_INTERVAL_SECONDS:
            raise HsmError(f"waiting to retry the HSM after: {fault.message}")
        state.last_recovery = time.monotonic()
        creds = hsm_credentials(self.settings, label)
        self._check_hold(label)  # before touching the HSM at all
        survivors = [name for name, open_ in self._sessions.items() if open_.token is not None]
        for open_ in self._sessions.values():
            if open_.token is not None and open_.pid == os.getpid():
                open_.token.close()
            open_.token = None
        reload(creds.module)
        for name in survivors:
            if name != label:
                self._reopen_locked(name)
        state.token = self._open(label)
        state.pid = os.getpid()
        state.fault = None
        log.info("HSM token %r opened again after: %s", label, fault.message)

    def _reopen_locked(self, label: str) -> None:
        """After a reset for another token: this one's session again, or its fault for later."""
        state = self._sessions[label]
        try:
            state.token, state.pid = self._open(label), os.getpid()
        except HsmError as exc:
            state.fault = exc
            log.warning("HSM token %r not opened again after a reset: %s", label, exc.message)

    def _open(self, label: str) -> Pkcs11Token:
        from custody.hsm.pkcs11 import Pkcs11Token

        creds = hsm_credentials(self.settings, label)
        self._check_hold(label)
        try:
            return Pkcs11Token(
                creds.module,
                creds.token,
                creds.pin,
                on_fault=lambda error: self.hsm_fault(error, label),
            )
        except PinIncorrect as exc:
            self._place_hold(label, exc)
            raise
        except HsmError as exc:
            if exc.retryable:
                self._sessions[label].fault = exc  # the next attempt resets the library first
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

    def key_ceremony(
        self, kek: bytes, *, backup: bool, token_label: str | None = None
    ) -> KeyCeremony:
        """A ceremony's own session on the token holding `kek` (custody.hsm.pkcs11.wrapping):
        for a backup the security officer imports it as a trusted wrapping key, so it must open
        before this process uses the token for anything else; a restore needs no SO, and may
        go into any of the installation's tokens (`token_label`, default the main one)."""
        from custody.hsm.pkcs11.wrapping import KeyCeremony

        creds = hsm_credentials(self.settings, token_label)
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
            for state in self._sessions.values():
                if state.token is not None and state.pid == os.getpid():
                    state.token.close()
                state.token, state.fault = None, None
        self.db.dispose()


def database_timeouts(settings: Settings) -> DatabaseTimeouts:
    """How long this process waits on its database (custody.store.database)."""
    return DatabaseTimeouts(
        connect_seconds=settings.database_connect_timeout_seconds,
        statement_seconds=settings.database_statement_timeout_seconds,
        pool_seconds=settings.database_pool_timeout_seconds,
        liveness_seconds=settings.database_liveness_seconds,
        connections=settings.database_process_connections or DEFAULT_CONNECTIONS,
    )
