"""The signer worker loop: in-process beside the API (`custody serve`) or alone (`custody worker`).

Several workers may run against PostgreSQL: claims use `FOR UPDATE SKIP LOCKED`. On SQLite the
write lock already serialises claims.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

from custody.chains.errors import SignatureMismatch
from custody.errors import CustodyError
from custody.freezes.breakers import signature_check_failed
from custody.runtime import Runtime
from custody.seals.gate import ConfigurationGate
from custody.seals.service import RootKey
from custody.signing import pipeline
from custody.store.base import utcnow

log = logging.getLogger("custody.signing")
EXPIRY_SWEEP_SECONDS = 5.0


@dataclass(frozen=True)
class SignatureCheckFailed:
    """The HSM returned a signature that failed its software check (custody.signing.payloads):
    the request fails, and the built-in `signature-check` breaker freezes all signing."""

    reason: str


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


class SignerWorker:
    def __init__(self, runtime: Runtime, worker_id: str | None = None) -> None:
        self.runtime = runtime
        self.worker_id = worker_id or default_worker_id()
        self.wake = threading.Event()
        self.signed = 0
        self.configuration = ConfigurationGate(self._root_key)

    def _root_key(self) -> RootKey:
        return RootKey.on(self.runtime.token(), self.runtime.settings.root_key_label)

    def run_once(self) -> bool:
        """Sign one batch of requests; True when there was something to do.

        Claims and results are each written in one transaction per batch: the HSM is fast, and
        per-request commits (each an fsync) would otherwise dominate.
        """
        db, settings = self.runtime.db, self.runtime.settings
        claims: list[pipeline.Claim] = []
        with db.write() as session:
            for _ in range(settings.signing_batch_size):
                claim = pipeline.claim_next(
                    session,
                    worker_id=self.worker_id,
                    lease_seconds=settings.signing_lease_seconds,
                    skip_locked=not db.sqlite,
                    configuration=self.configuration,
                    relying_party=settings.relying_party,
                )
                if claim is None:
                    break
                claims.append(claim)
        if not claims:
            return False
        outcomes = [self._sign(claim) for claim in claims]
        with db.write() as session:
            # A signature that failed its check freezes all signing before anything of this
            # batch is recorded: no other signature the same HSM made is released either.
            for claim, outcome in zip(claims, outcomes, strict=True):
                if isinstance(outcome, SignatureCheckFailed):
                    signature_check_failed(
                        session,
                        request_id=claim.request_id,
                        key_label=claim.key_label,
                        detail=outcome.reason,
                        worker_id=self.worker_id,
                    )
            for claim, outcome in zip(claims, outcomes, strict=True):
                if isinstance(outcome, SignatureCheckFailed | str):
                    reason = outcome if isinstance(outcome, str) else outcome.reason
                    pipeline.fail(session, claim.request_id, reason, worker_id=self.worker_id)
                elif pipeline.finish(session, claim, outcome, worker_id=self.worker_id):
                    self.signed += 1
        return True

    def _sign(self, claim: pipeline.Claim) -> dict[str, str] | str | SignatureCheckFailed:
        """The signed transaction, or why it could not be signed (fail closed)."""
        try:
            return pipeline.sign(self.runtime.token(), claim)
        except SignatureMismatch as exc:
            log.critical(
                "request %s: signature failed its software check: %s", claim.request_id, exc.message
            )
            return SignatureCheckFailed(exc.message)
        except CustodyError as exc:
            log.error("request %s failed: %s", claim.request_id, exc.message)
            return exc.message
        except Exception:
            log.exception("request %s failed unexpectedly", claim.request_id)
            return "internal error while signing"

    def drain(self, max_batches: int = 10_000) -> int:
        """Sign until nothing is left (tests, `custody worker --once`); how many were signed."""
        before = self.signed
        for _ in range(max_batches):
            if not self.run_once():
                break
        return self.signed - before

    def expire_due(self) -> int:
        """Pending requests past their deadline become `expired` (and release their limits)."""
        from custody.approvals.service import expire_due
        from custody.clients.auth import purge_expired_nonces

        with self.runtime.db.write() as session:
            # Burnt token nonces only matter until their token expires; keep the table small.
            purge_expired_nonces(session, utcnow())
        with self.runtime.db.write() as session:
            return expire_due(session)

    def run(self, stop: threading.Event) -> None:
        poll = self.runtime.settings.worker_poll_seconds
        log.info("signer worker %s started", self.worker_id)
        last_sweep = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() - last_sweep > EXPIRY_SWEEP_SECONDS:
                    last_sweep = time.monotonic()
                    self.expire_due()
                busy = self.run_once()
            except CustodyError as exc:
                log.warning("signer worker: %s", exc.message)
                busy = False
                stop.wait(1.0)
            except Exception:
                log.exception("signer worker error")
                busy = False
                stop.wait(1.0)
            if not busy:
                self.wake.wait(poll)
                self.wake.clear()
        log.info("signer worker %s stopped", self.worker_id)
