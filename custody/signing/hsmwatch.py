"""How a signer process follows the HSM: back off while it fails, probe until it is back, and
report what it finds (custody.hsmhealth.status) for `/readyz` and the request views.

One watch per token: the main token's (the ledger and root keys live there, so nothing is
claimed while it fails) and one per extra token, whose failure only makes the requests of keys
on it wait.

While the HSM is down nothing is claimed: requests wait, `approved`, with their approvals and
nonce, and the ledger gains no entry per retry. A refused PIN is not retried at all (the login
hold of custody.hsmhealth.holds); only `custody hsm rearm` lifts it.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import datetime
from typing import TYPE_CHECKING

from custody.errors import CustodyError
from custody.hsm.errors import HsmError, LoginHeld, PinIncorrect
from custody.hsmhealth import status
from custody.hsmhealth.status import HsmState
from custody.runtime import Runtime
from custody.store.base import utcnow

if TYPE_CHECKING:
    from custody.hsm.pkcs11 import Pkcs11Token

log = logging.getLogger("custody.signing")
FIRST_RETRY_SECONDS = 0.5


class HsmWatch:
    def __init__(self, runtime: Runtime, process: str, token_label: str | None = None) -> None:
        self.runtime = runtime
        self.process = process
        self.token_label = token_label or runtime.token_label
        self._main = self.token_label == runtime.token_label
        self.state = HsmState.OK
        self.detail = ""
        self.since: datetime = utcnow()
        self._failures = 0
        self._next_probe = 0.0  # monotonic; while failing: when to try the HSM again
        self._reported = 0.0  # monotonic; when the state was last written

    @property
    def ok(self) -> bool:
        return self.state is HsmState.OK

    def failed(self, error: HsmError) -> None:
        """A retryable HSM error: wait (doubling, with jitter) before the HSM is tried again."""
        state = (
            HsmState.LOGIN_HELD
            if isinstance(error, PinIncorrect | LoginHeld)
            else HsmState.UNAVAILABLE
        )
        self._failures += 1
        settings = self.runtime.settings
        if state is HsmState.LOGIN_HELD:
            delay = settings.hsm_check_seconds  # only the hold is looked at, never the HSM
        else:
            ceiling = min(
                settings.hsm_retry_max_seconds, FIRST_RETRY_SECONDS * 2 ** (self._failures - 1)
            )
            delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 -- jitter, no secret
        self._next_probe = time.monotonic() + delay
        if state is not self.state or error.message != self.detail:
            if state is not self.state:
                log.error(
                    "HSM token %r %s, requests wait for it: %s",
                    self.token_label,
                    state.value,
                    error.message,
                )
            self.state, self.detail = state, error.message
            if self._failures == 1:
                self.since = utcnow()
            self._report()

    def available(self) -> bool:
        """Whether claims may go on: the HSM is fine, or it failed and a probe now finds it back."""
        if self.ok:
            return True
        if time.monotonic() < self._next_probe:
            return False
        return self.probe()

    def probe(self) -> bool:
        """Open the token afresh and look it over (`_check`); True when that worked."""
        try:
            self._check(self.runtime.recover_token(self.token_label))
        except HsmError as exc:
            self.failed(exc)
            return False
        self._back()
        return True

    def look(self) -> None:
        """When idle: every `hsm_check_seconds`, check the HSM (a key lookup) and report, so an
        outage shows before any request needs the HSM and its end shows without one."""
        if time.monotonic() - self._reported < self.runtime.settings.hsm_check_seconds:
            return
        if not self.ok:
            self._report()  # still failing: the probe schedule above decides when to retry
            return
        try:
            self._check(self.runtime.token_for(self.token_label))
        except HsmError as exc:
            self.failed(exc)
            return
        self._report()

    def _check(self, token: Pkcs11Token) -> None:
        """The main token answers for the ledger key; another for the keys it holds."""
        if self._main:
            token.get_key(self.runtime.settings.ledger_key_label)
        else:
            token.list_keys()

    def seconds_to_probe(self) -> float | None:
        return None if self.ok else max(0.0, self._next_probe - time.monotonic())

    def withdraw(self) -> None:
        try:
            with self.runtime.db.write() as session:
                status.withdraw(session, self.process)
        except CustodyError:
            pass  # the report goes stale on its own

    def _back(self) -> None:
        if not self.ok:
            log.warning(
                "HSM token %r available again after %d failed attempts",
                self.token_label,
                self._failures,
            )
            self.state, self.detail, self.since = HsmState.OK, "", utcnow()
        self._failures = 0
        self._report()

    def _report(self) -> None:
        self._reported = time.monotonic()
        token_label = self.token_label
        try:
            with self.runtime.db.write() as session:
                status.report(
                    session,
                    process=self.process,
                    token_label=token_label,
                    state=self.state,
                    detail=self.detail,
                    since=self.since,
                )
        except CustodyError as exc:
            log.warning("could not report the HSM's state: %s", exc.message)
