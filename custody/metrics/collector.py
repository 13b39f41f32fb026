"""The `custody_*` metrics: a Prometheus collector that reads the database at scrape time.

A scrape must never hang or fail because the database does: the queries run in a thread of
their own (one at a time, custody.store.liveness.Probe), under the store's own timeouts, and the
scrape waits at most `SCRAPE_WAIT_SECONDS` for them. Without an answer the domain metrics are
left out and `custody_metrics_database_up` is 0; the process metrics are still there.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from custody.hsmhealth import holds, status
from custody.hsmhealth.status import HsmState
from custody.metrics import repository
from custody.runtime import Runtime, token_labels
from custody.store.base import utcnow
from custody.store.database import Database
from custody.store.liveness import Probe

# Under Prometheus's default scrape timeout (10 s), and short enough that a scrape of a database
# that does not answer still comes back well within it.
SCRAPE_WAIT_SECONDS = 2.0
# Signing latency is measured over the requests signed in this window.
LATENCY_WINDOW = timedelta(hours=1)
LATENCY_QUANTILES = (0.5, 0.9, 0.99)
log = logging.getLogger("custody.metrics")
NO_RULE = "(none)"  # the default deny: no rule matched
FREEZE_SCOPES = ("installation", "wallet")
# Who freezes (custody.store.models.Freeze.source, without the id after the colon).
FREEZE_SOURCES = ("operator", "client", "breaker", "signer")


@dataclass(frozen=True)
class HsmToken:
    up: bool
    held: bool


@dataclass
class Snapshot:
    """What one scrape read, in one read transaction."""

    taken_at: datetime
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    decisions: list[tuple[str, str | None, int]] = field(default_factory=list)
    ledger_size: int = 0
    checkpoint: tuple[int, datetime] | None = None
    deliveries: dict[str, int] = field(default_factory=dict)
    freezes: dict[tuple[str, str], int] = field(default_factory=dict)
    tokens: dict[str, HsmToken] = field(default_factory=dict)
    signing_seconds: list[float] = field(default_factory=list)
    approval_seconds: list[float] = field(default_factory=list)


def take_snapshot(db: Database, configured_tokens: Sequence[str]) -> Snapshot:
    now = utcnow()
    with db.read() as session:
        snap = Snapshot(
            taken_at=now,
            requests=repository.requests_by_type_and_status(session),
            decisions=repository.decisions_by_rule(session),
            ledger_size=repository.ledger_size(session),
            checkpoint=repository.newest_checkpoint(session),
            deliveries=repository.webhook_deliveries_by_status(session),
        )
        for scope, source, count in repository.active_freezes(session):
            # `breaker:<id>`, `client:<id>`: the kind of source; the ids are in the freeze list
            key = (scope, source.split(":", 1)[0])
            snap.freezes[key] = snap.freezes.get(key, 0) + count
        times = repository.signing_times_since(session, now - LATENCY_WINDOW)
        approvals = repository.approval_times_since(session, now - LATENCY_WINDOW)
        reports = status.fresh_reports(session, max_age_seconds=status.STALE_AFTER_SECONDS)
        held = {h.token_label for h in holds.all_holds(session)}
    snap.signing_seconds = _durations(times)
    snap.approval_seconds = _durations(approvals)
    labels = list(dict.fromkeys([*configured_tokens, *(r.token_label for r in reports)]))
    for label in labels:
        mine = [r for r in reports if r.token_label == label]
        # Up only when a signer vouches for it: no fresh report is no evidence it works.
        up = bool(mine) and all(r.state is HsmState.OK for r in mine) and label not in held
        snap.tokens[label] = HsmToken(up=up, held=label in held)
    return snap


def _durations(spans: Sequence[tuple[datetime, datetime]]) -> list[float]:
    return sorted(max(0.0, (end - start).total_seconds()) for start, end in spans)


def quantile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank quantile of an ordered, non-empty sequence."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class DomainCollector(Collector):
    """The `custody_*` metrics of one installation's database."""

    def __init__(self, runtime: Runtime, *, wait_seconds: float = SCRAPE_WAIT_SECONDS) -> None:
        self._db = runtime.db
        self._tokens = [t for t in token_labels(runtime.settings) if t]
        self._wait = wait_seconds
        self._latest: Snapshot | None = None
        # A scrape still waiting on the database is joined by the next, never doubled.
        self._probe = Probe(self._read, fresh_seconds=0.0)

    def _read(self) -> None:
        self._latest = take_snapshot(self._db, self._tokens)

    def collect(self) -> Iterator[Metric]:
        started = utcnow()
        verdict = self._probe.run(self._wait, reuse=False)
        snap = self._latest
        fresh = (
            verdict.answered
            and snap is not None
            and snap.taken_at >= started - timedelta(seconds=self._wait)
        )
        if not fresh:
            log.warning("domain metrics left out of this scrape: %s", verdict.cause or "stale")
        up = GaugeMetricFamily(
            "custody_metrics_database_up",
            "1 when the database answered this scrape's queries in time; 0: the domain "
            "metrics are left out",
        )
        up.add_metric([], 1.0 if fresh else 0.0)
        yield up
        if fresh and snap is not None:
            yield from families(snap)


def families(snap: Snapshot) -> Iterator[Metric]:
    requests = GaugeMetricFamily(
        "custody_requests", "Requests by type and status", labels=["type", "status"]
    )
    for kind, state, count in snap.requests:
        requests.add_metric([kind, state], count)
    yield requests

    decisions = GaugeMetricFamily(
        "custody_policy_decisions",
        "Stored requests by the policy's decision at intake and the rule that decided",
        labels=["decision", "rule"],
    )
    for decision, rule, count in snap.decisions:
        decisions.add_metric([decision, rule or NO_RULE], count)
    yield decisions

    yield GaugeMetricFamily(
        "custody_ledger_entries", "Entries in the ledger (its tree size)", value=snap.ledger_size
    )
    signed_size = snap.checkpoint[0] if snap.checkpoint else 0
    yield GaugeMetricFamily(
        "custody_ledger_unsigned_entries",
        "Ledger entries no signed checkpoint covers yet",
        value=max(0, snap.ledger_size - signed_size),
    )
    if snap.checkpoint is not None:
        age = (snap.taken_at - snap.checkpoint[1]).total_seconds()
        yield GaugeMetricFamily(
            "custody_checkpoint_age_seconds",
            "Seconds since the newest signed checkpoint was made",
            value=max(0.0, age),
        )

    yield GaugeMetricFamily(
        "custody_webhook_backlog",
        "Webhook deliveries pending (not yet delivered, still retried)",
        value=snap.deliveries.get("pending", 0),
    )
    yield GaugeMetricFamily(
        "custody_webhook_failed_deliveries",
        "Webhook deliveries that gave up after their last attempt",
        value=snap.deliveries.get("failed", 0),
    )

    hsm_up = GaugeMetricFamily(
        "custody_hsm_up",
        "1 when every fresh signer report on the token says ok; 0 on a problem, a login hold "
        "or no signer reporting",
        labels=["token"],
    )
    login_hold = GaugeMetricFamily(
        "custody_login_hold",
        "1 while logins to the token are held after a refused PIN (custody hsm rearm)",
        labels=["token"],
    )
    for label, token in snap.tokens.items():
        hsm_up.add_metric([label], 1.0 if token.up else 0.0)
        login_hold.add_metric([label], 1.0 if token.held else 0.0)
    yield hsm_up
    yield login_hold

    freezes = GaugeMetricFamily(
        "custody_freezes_active",
        "Active freezes by scope (installation: all signing; wallet: one wallet) and source "
        "(operator, client, breaker, signer)",
        labels=["scope", "source"],
    )
    every = {(scope, source): 0 for scope in FREEZE_SCOPES for source in FREEZE_SOURCES}
    for (scope, source), count in (every | snap.freezes).items():
        freezes.add_metric([scope, source], count)
    yield freezes

    yield GaugeMetricFamily(
        "custody_signed_last_hour",
        "Requests signed in the last hour (the population of custody_signing_latency_seconds)",
        value=len(snap.signing_seconds),
    )
    latency = GaugeMetricFamily(
        "custody_signing_latency_seconds",
        "Seconds from a request's creation to its signature, nearest-rank quantiles over the "
        "requests signed in the last hour (approval waits included); absent without any",
        labels=["quantile"],
    )
    if snap.signing_seconds:
        for q in LATENCY_QUANTILES:
            latency.add_metric([f"{q:g}"], quantile(snap.signing_seconds, q))
    yield latency

    yield GaugeMetricFamily(
        "custody_approved_last_hour",
        "Requests whose approval quorum was met in the last hour (the population of "
        "custody_approval_wait_seconds)",
        value=len(snap.approval_seconds),
    )
    wait = GaugeMetricFamily(
        "custody_approval_wait_seconds",
        "Seconds from a request's creation to the approval that completed its quorum, "
        "nearest-rank quantiles over the quorums met in the last hour; absent without any",
        labels=["quantile"],
    )
    if snap.approval_seconds:
        for q in LATENCY_QUANTILES:
            wait.add_metric([f"{q:g}"], quantile(snap.approval_seconds, q))
    yield wait


_LOCK = threading.Lock()
_REGISTRIES: weakref.WeakKeyDictionary[Runtime, CollectorRegistry] = weakref.WeakKeyDictionary()


def registry_for(runtime: Runtime) -> CollectorRegistry:
    """The registry of the domain metrics of `runtime`'s installation, made once per runtime."""
    with _LOCK:
        registry = _REGISTRIES.get(runtime)
        if registry is None:
            registry = CollectorRegistry(auto_describe=False)
            registry.register(DomainCollector(runtime))
            _REGISTRIES[runtime] = registry
        return registry
