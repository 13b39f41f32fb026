"""The signer's check that the configuration it is about to use is the sealed one.

Checked for every claim, on the rows it relies on: the small sections whole (chains, assets,
venues, prices, group permissions, policy versions) and the request's client, wallet, key and
approvers with their passkeys, so the cost does not grow with the number of clients and wallets.
A refusal releases nothing: requests keep their state and wait (an insider's edit must not be
able to fail honest requests for good), the ledger says why (`configuration.refused`, once per
distinct reason), and the signer freezes all signing (the `configuration-seal` breaker) until
people have looked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session

from custody.hsm.errors import KeyNotFound
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.seals.document import Scope
from custody.seals.service import ConfigurationRefused, RootKey, verify

log = logging.getLogger("custody.seals")


class ConfigurationGate:
    def __init__(self, root_key: Callable[[], RootKey]) -> None:
        """`root_key` reads the installation root public key from the HSM: never from the
        database, which is what the seal protects against."""
        self._root_key = root_key
        self._root: RootKey | None = None
        self._last_refusal: str | None = None
        self._lock = threading.Lock()

    def refusal(self, session: Session, scope: Scope) -> str | None:
        """Why the rows this claim relies on are not the sealed ones; None when they are."""
        try:
            verify(session, self._root_key_cached(), scope)
        except KeyNotFound:
            reason = "the installation root key is not on the token: run `custody init`"
        except ConfigurationRefused as exc:
            reason = exc.message
        else:
            with self._lock:
                self._last_refusal = None
            return None
        self._record(session, reason)
        return reason

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
