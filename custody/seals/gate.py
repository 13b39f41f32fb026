"""The signer's check that the configuration it is about to use is the sealed one.

Checked once per claim transaction, only when there is something to sign. A refusal releases
nothing: requests keep their state and wait (an insider's edit must not be able to fail honest
requests for good), the ledger says why (`configuration.refused`, once per distinct reason), and
the signer freezes all signing (the `configuration-seal` breaker) until people have looked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy.orm import Session

from custody.hsm.errors import KeyNotFound
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.seals.service import ConfigurationRefused, RootKey, verify

log = logging.getLogger("custody.seals")
_CHECKED = "custody.seals.checked"


class ConfigurationGate:
    def __init__(self, root_key: Callable[[], RootKey]) -> None:
        """`root_key` reads the installation root public key from the HSM: never from the
        database, which is what the seal protects against."""
        self._root_key = root_key
        self._root: RootKey | None = None
        self._last_refusal: str | None = None
        self.refusal: str | None = None
        """Why the last check refused, for the freeze it leads to."""
        self._lock = threading.Lock()

    def holds(self, session: Session) -> bool:
        checked = session.info.get(_CHECKED)
        if isinstance(checked, bool):
            return checked
        try:
            verify(session, self._root_key_cached())
        except KeyNotFound:
            self._refused(
                session, "the installation root key is not on the token: run `custody init`"
            )
            session.info[_CHECKED] = False
            return False
        except ConfigurationRefused as exc:
            self._refused(session, exc.message)
            session.info[_CHECKED] = False
            return False
        with self._lock:
            self._last_refusal = None
        session.info[_CHECKED] = True
        return True

    def _root_key_cached(self) -> RootKey:
        with self._lock:
            if self._root is None:
                self._root = self._root_key()
            return self._root

    def _refused(self, session: Session, reason: str) -> None:
        self.refusal = reason
        with self._lock:
            repeated, self._last_refusal = self._last_refusal == reason, reason
        if repeated:
            return
        log.error("signing stopped: %s", reason)
        ledger.append(
            session, EventKind.CONFIGURATION_REFUSED, "signer", {"reason": reason, "signed": 0}
        )
