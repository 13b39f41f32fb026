"""The signer's check that the configuration it is about to use is the sealed one.

Checked for every claim, on the rows it relies on: the small sections whole (chains, assets,
venues, prices, group permissions, policy versions) and the request's client, wallet, key and
approvers with their passkeys, so the cost does not grow with the number of clients and wallets.
A refusal releases nothing: requests keep their state and wait (an insider's edit must not be
able to fail honest requests for good), the ledger says why (`configuration.refused`, once per
distinct reason), and the signer freezes all signing (the `configuration-seal` breaker) until
people have looked.

Under governance, rows equal to the newest seal may still not be in effect: that seal waits for
the quorum (custody.approvals.configuration_approvals, given here as `governance`). The requests
relying on what it changes wait, and the ledger says so once (`configuration.awaiting_quorum`);
nothing is frozen, since an operator proposing a change is not an attack.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from custody.hsm.errors import KeyNotFound
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.seals import repository
from custody.seals.document import Scope
from custody.seals.service import ConfigurationRefused, RootKey, Verified, verify

log = logging.getLogger("custody.seals")

Governance = Callable[[Session, RootKey, Verified, bool], str | None]
"""Why rows equal to the newest seal are not in effect yet (None when they are); the bool says
whether all rows were compared, or only a claim's scope."""


@dataclass(frozen=True)
class Verdict:
    refused: str | None = None
    """The rows are not the sealed ones: nothing may be signed, and signing freezes."""
    waiting: str | None = None
    """The rows are sealed, but what this claim relies on waits for the governance quorum."""


class ConfigurationGate:
    def __init__(
        self, root_key: Callable[[], RootKey], governance: Governance | None = None
    ) -> None:
        """`root_key` reads the installation root public key from the HSM: never from the
        database, which is what the seal protects against."""
        self._root_key = root_key
        self._governance = governance
        self._root: RootKey | None = None
        self._last_refusal: str | None = None
        self._last_waiting: str | None = None
        self._newest_seen = 0
        self._lock = threading.Lock()

    def check(self, session: Session, scope: Scope) -> Verdict:
        try:
            root = self._root_key_cached()
            with repository.holding(session):
                verified = verify(session, root, scope)
            self._never_back(verified.seal.epoch)
            waiting = (
                None
                if self._governance is None
                else self._governance(session, root, verified, False)
            )
        except KeyNotFound:
            reason = "the installation root key is not on the token: run `custody init`"
        except ConfigurationRefused as exc:
            reason = exc.message
        else:
            with self._lock:
                self._last_refusal = None
            if waiting is not None:
                self._record_waiting(session, waiting)
            return Verdict(waiting=waiting)
        self._record(session, reason)
        return Verdict(refused=reason)

    def _never_back(self, epoch: int) -> None:
        """Seals only ever grow: a newest seal older than one this process already saw means the
        seal table and its ledger entries were rolled back together (triggers dropped), which
        the ledger's next consistency check would find only later."""
        with self._lock:
            seen, self._newest_seen = self._newest_seen, max(self._newest_seen, epoch)
        if epoch < seen:
            raise ConfigurationRefused(
                f"the newest configuration seal is {epoch}, but this signer already saw seal "
                f"{seen}: seals and their ledger entries were removed"
            )

    def _root_key_cached(self) -> RootKey:
        with self._lock:
            if self._root is None:
                self._root = self._root_key()
            return self._root

    def _record(self, session: Session, reason: str) -> None:
        with self._lock:
            repeated, self._last_refusal = self._last_refusal == reason, reason
        if repeated:
            return
        log.error("signing stopped: %s", reason)
        ledger.append(
            session, EventKind.CONFIGURATION_REFUSED, "signer", {"reason": reason, "signed": 0}
        )

    def _record_waiting(self, session: Session, reason: str) -> None:
        with self._lock:
            repeated, self._last_waiting = self._last_waiting == reason, reason
        if repeated:
            return
        log.warning("requests wait: %s", reason)
        ledger.append(
            session, EventKind.CONFIGURATION_AWAITING_QUORUM, "signer", {"reason": reason}
        )
