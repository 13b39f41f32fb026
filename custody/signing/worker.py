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

from custody import tracing
from custody.approvals import configuration_approvals
from custody.chains.errors import SignatureMismatch
from custody.chains.evm.eip1559 import load_encoder
from custody.errors import CustodyError
from custody.freezes.breakers import signature_check_failed
from custody.hsm.errors import HsmError, HsmSignatureInvalid, KeyNotFound
from custody.hsm.signer import Signer
from custody.runtime import Runtime
from custody.seals.gate import ConfigurationGate
from custody.seals.service import RootKey
from custody.signing import evidence, failpoints, pipeline
from custody.signing.hsmwatch import HsmWatch
from custody.signing.payloads import KeyGone, OwnersWaiting
from custody.store.base import utcnow

log = logging.getLogger("custody.signing")
EXPIRY_SWEEP_SECONDS = 5.0


@dataclass(frozen=True)
class SignatureCheckFailed:
    """The HSM returned a signature that failed its software check (custody.signing.payloads):
    the request fails, and the built-in `signature-check` breaker freezes all signing."""

    reason: str


@dataclass(frozen=True)
class Deferred:
    """The HSM could not sign now but may later: the request goes back to `approved` with its
    approvals and nonce, and is signed once the HSM is back (custody.signing.hsmwatch)."""

    reason: str


Outcome = dict[str, str] | str | SignatureCheckFailed | Deferred


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


class SignerWorker:
    def __init__(self, runtime: Runtime, worker_id: str | None = None) -> None:
        self.runtime = runtime
        self.worker_id = worker_id or default_worker_id()
        self.wake = threading.Event()
        self.signed = 0
        self.configuration = ConfigurationGate(
            self._root_key, governance=configuration_approvals.waiting_reason
        )
        self.hsm = HsmWatch(runtime, self.worker_id)  # the main token
        # The extra tokens, each followed on its own: one failing makes only its keys wait.
        self.tokens = {
            label: HsmWatch(runtime, self.worker_id, label)
            for label in runtime.settings.extra_token_labels.values()
        }
        failpoints.disarm_for(runtime.settings)
        # Claims of a batch whose results did not commit (the database failed between the two
        # transactions): this worker's own, released at its next turn instead of at lease end.
        self._unrecorded: list[str] = []
        # Whether the last batch may have left requests behind (it was full): look again at
        # once instead of waiting for the doorbell.
        self.queue_left = False
        # Whether the requests limits count were verified ahead of the first claim (evidence.warm).
        self._warm = False

    def _root_key(self) -> RootKey:
        return RootKey.on(self.runtime.token(), self.runtime.settings.root_key_label)

    def run_once(self) -> bool:
        """Sign one batch of requests; True when there was something to do.

        Claims and results are each written in one transaction per batch: the HSM is fast, and
        per-request commits (each an fsync) would otherwise dominate.
        """
        if self._unrecorded:
            self._release_unrecorded()
        if not self.hsm.available():
            return False  # while the HSM fails nothing is claimed: requests wait, approved
        waiting = [label for label, watch in self.tokens.items() if not watch.available()]
        self._warm_up()
        started = tracing.now()
        claims = self._claim(waiting)
        if not claims:
            return False  # no span: an idle signer looks every few hundred milliseconds
        # One trace per batch, from the claim's start (its span is written once it is known
        # to have claimed something); the request's own trace (its HTTP call) is found by the
        # spans' custody.request_id and custody.http_request_id.
        batch: tracing.Attributes = {
            "custody.worker": self.worker_id,
            "custody.claimed": len(claims),
        }
        with tracing.span("signer.batch", batch, start=started):
            claimed = {"custody.request_ids": [claim.request_id for claim in claims]}
            tracing.finished("signer.claim", started, claimed)
            self._sign_and_record(claims)
        return True

    def _claim(self, waiting: list[str]) -> list[pipeline.Claim]:
        db, settings = self.runtime.db, self.runtime.settings
        with db.write() as session:
            claims = pipeline.claim_batch(
                session,
                limit=settings.signing_batch_size,
                worker_id=self.worker_id,
                lease_seconds=settings.signing_lease_seconds,
                skip_locked=not db.sqlite,
                configuration=self.configuration,
                relying_party=settings.relying_party,
                max_fee_wei=settings.max_tx_fee_wei,
                waiting_tokens=waiting,
            )
        # A batch short of full emptied the queue as this transaction saw it; what commits
        # after it rings the doorbell (`wake`), so the loop need not look again at once.
        self.queue_left = len(claims) == settings.signing_batch_size
        return claims

    def _sign_and_record(self, claims: list[pipeline.Claim]) -> None:
        self._unrecorded = [claim.request_id for claim in claims]
        outcomes: list[Outcome] = []
        for claim in claims:
            # Once a token failed, the rest of the batch on it waits too instead of failing one
            # by one.
            watch = self._watch(claim)
            # A PSBT's owner keys may be on several tokens: its handler skips a failing one.
            ready = watch.ok or bool(claim.owner_tokens)
            with tracing.span("signer.sign", _traced(claim)) as span:
                outcome = self._sign(claim) if ready else Deferred(self._waiting(watch))
                span.set({"custody.outcome": _named(outcome)})
                if isinstance(outcome, str | SignatureCheckFailed):
                    span.fail(outcome if isinstance(outcome, str) else outcome.reason)
            outcomes.append(outcome)
        with tracing.span("signer.record") as span, self.runtime.db.write() as session:
            span.set(
                {
                    "custody.request_ids": [claim.request_id for claim in claims],
                    "custody.outcomes": [_named(outcome) for outcome in outcomes],
                }
            )
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
                if isinstance(outcome, Deferred):
                    pipeline.defer(
                        session, claim.request_id, outcome.reason, worker_id=self.worker_id
                    )
                elif isinstance(outcome, SignatureCheckFailed | str):
                    reason = outcome if isinstance(outcome, str) else outcome.reason
                    pipeline.fail(session, claim.request_id, reason, worker_id=self.worker_id)
                elif pipeline.finish(session, claim, outcome, worker_id=self.worker_id):
                    self.signed += 1
        self._unrecorded = []

    def _warm_up(self) -> None:
        """Once: verify what limits will count in a read transaction, before the claims take
        the ledger lock that intake waits on (custody.signing.evidence.warm)."""
        if self._warm:
            return
        # eth-account (0.5 s to import) now, not in the first claim, which holds the write lock
        load_encoder()
        with self.runtime.db.read() as session:
            counted = evidence.warm(session)
        log.info("signer worker %s verified %d counted requests", self.worker_id, counted)
        self._warm = True

    def _release_unrecorded(self) -> None:
        """Back to `approved` what this worker claimed and could not record: no signature of
        that batch was released (it was never stored), so the requests are signed afresh, at
        once, rather than after their lease runs out."""
        with self.runtime.db.write() as session:
            for request_id in self._unrecorded:
                pipeline.defer(
                    session,
                    request_id,
                    "the database failed before the signature was recorded",
                    worker_id=self.worker_id,
                )
        self._unrecorded = []

    def _sign(self, claim: pipeline.Claim, *, again: bool = False) -> Outcome:
        """The signed transaction, why it cannot be signed (fail closed), or that it waits for
        the HSM. Only a definite answer fails a request: a refusal, a signature that does not
        verify, a payload the key cannot sign."""
        try:
            return pipeline.sign_on(_WatchedTokens(self), claim)
        except KeyNotFound as exc:
            # A token that went away answers "no such key" first: only a token found healthy
            # again (reset, logged in, its ledger key there) makes the answer definite.
            if not again and self._watch(claim).probe():
                return self._sign(claim, again=True)
            return self._outcome_of(claim, exc)
        except Exception as exc:
            return self._outcome_of(claim, exc)

    def _outcome_of(self, claim: pipeline.Claim, exc: Exception) -> Outcome:
        if isinstance(exc, OwnersWaiting):
            return Deferred(exc.message)  # each failing token was recorded by its own watch
        if isinstance(exc, SignatureMismatch | HsmSignatureInvalid):
            log.critical(
                "request %s: signature failed its software check: %s", claim.request_id, exc.message
            )
            return SignatureCheckFailed(exc.message)
        watch = self._watch(claim)
        if isinstance(exc, HsmError) and exc.retryable and not self._definite(exc, watch):
            watch.failed(exc)
            return Deferred(self._waiting(watch))
        if isinstance(exc, CustodyError):
            log.error("request %s failed: %s", claim.request_id, exc.message)
            return exc.message
        log.error("request %s failed unexpectedly", claim.request_id, exc_info=exc)
        return "internal error while signing"

    @staticmethod
    def _definite(exc: HsmError, watch: HsmWatch) -> bool:
        """A missing key is a definite answer only from a token just found healthy."""
        return isinstance(exc, KeyNotFound) and watch.ok

    def _watch(self, claim: pipeline.Claim) -> HsmWatch:
        """The watch of the token the claim's key is on (keys.token, as Runtime.route reads it)."""
        return self.watch_of(claim.token)

    def watch_of(self, token_label: str) -> HsmWatch:
        return self.tokens.get(self.runtime.route(token_label), self.hsm)

    @staticmethod
    def _waiting(watch: HsmWatch) -> str:
        return f"waiting for the HSM: {watch.detail or 'unavailable'}"

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
            busy = False
            try:
                if time.monotonic() - last_sweep > EXPIRY_SWEEP_SECONDS:
                    last_sweep = time.monotonic()
                    self.expire_due()
                busy = self.run_once() and self.queue_left
                for watch in (self.hsm, *self.tokens.values()):
                    watch.look()
            except HsmError as exc:
                # Claims read the root key from the HSM: an outage can show here first.
                if exc.retryable:
                    self.hsm.failed(exc)
                else:
                    log.error("signer worker: %s", exc.message)
                    stop.wait(1.0)
            except CustodyError as exc:
                log.warning("signer worker: %s", exc.message)
                busy = False
                stop.wait(1.0)
            except Exception:
                log.exception("signer worker error")
                busy = False
                stop.wait(1.0)
            if not busy:
                probes = [w.seconds_to_probe() for w in (self.hsm, *self.tokens.values())]
                probe_in = min((p for p in probes if p is not None), default=None)
                self.wake.wait(poll if probe_in is None else min(max(probe_in, 0.01), 1.0))
                self.wake.clear()
        self.hsm.withdraw()
        log.info("signer worker %s stopped", self.worker_id)


def _traced(claim: pipeline.Claim) -> tracing.Attributes:
    return {
        "custody.request_id": claim.request_id,
        "custody.http_request_id": claim.http_request_id,
        "custody.wallet": claim.wallet_name,
        "custody.wallet_id": claim.wallet_id,
        "custody.key_label": claim.key_label,
        "custody.attempt": claim.attempt + 1,
    }


def _named(outcome: Outcome) -> str:
    """An outcome in a word, for spans: signed, failed, deferred, signature_check_failed."""
    if isinstance(outcome, dict):
        return "signed"
    if isinstance(outcome, Deferred):
        return "deferred"
    if isinstance(outcome, SignatureCheckFailed):
        return "signature_check_failed"
    return "failed"


class TokenAway(HsmError):
    """A token its watch already knows to be failing: not tried again before its next probe."""


class _WatchedTokens:
    """The tokens as this worker's watches see them, for a payload whose keys are on several
    (custody.signing.payloads.Tokens): a failing one is recorded by its watch and skipped."""

    def __init__(self, worker: SignerWorker) -> None:
        self._worker = worker

    def signer(self, token_label: str) -> Signer:
        watch = self._worker.watch_of(token_label)
        if not watch.ok:
            raise TokenAway(self._worker._waiting(watch))
        return self._worker.runtime.token_for(token_label)

    def failed(self, token_label: str, error: HsmError) -> None:
        watch = self._worker.watch_of(token_label)
        if isinstance(error, TokenAway):
            return
        if isinstance(error, KeyNotFound) and watch.probe():
            # found healthy again: the key is not there, a definite answer (the request fails)
            raise KeyGone(f"{error.message} ({watch.token_label}, found healthy)")
        watch.failed(error)
