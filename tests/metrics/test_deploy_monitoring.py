"""The alert rules and the Grafana dashboard in deploy/ parse, and use only metrics the
collector exports: a renamed metric must not leave an alert that can never fire."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from custody.metrics.collector import HsmToken, Snapshot, families

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRIC_NAME = re.compile(r"\bcustody_[a-z0-9_]+\b")


def exported() -> set[str]:
    """Every metric name the collector can export: a snapshot with every part present."""
    now = datetime.now(UTC)
    snap = Snapshot(
        taken_at=now,
        requests=[("withdrawal", "signed", 1)],
        decisions=[("deny", None, 1)],
        ledger_size=3,
        checkpoint=(2, now),
        deliveries={"pending": 1, "failed": 1},
        freezes={("installation", "breaker"): 1},
        tokens={"t": HsmToken(up=True, held=False)},
        signing_seconds=[1.0, 2.0],
        approval_seconds=[3.0],
    )
    names = {family.name for family in families(snap)}
    return names | {"custody_metrics_database_up"}


def used_in(expression: str) -> set[str]:
    return set(METRIC_NAME.findall(expression))


def test_every_alert_rule_is_complete_and_uses_exported_metrics() -> None:
    document = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    rules: list[dict[str, Any]] = [r for g in document["groups"] for r in g["rules"]]
    known = exported()
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        used = used_in(rule["expr"])
        assert used, f"{rule['alert']} uses no custody metric"
        assert used <= known, f"{rule['alert']} uses {used - known}, not exported"
    assert {r["alert"] for r in rules} >= {
        "CustodyDatabaseDown",
        "CustodyCheckpointTooOld",
        "CustodyHsmDown",
        "CustodyLoginHold",
        "CustodyBreakerTripped",
        "CustodySigningFrozen",
        "CustodyWebhookBacklogGrowing",
    }


def test_the_dashboard_uses_exported_metrics_only() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "custody.json").read_text())
    known = exported()
    shown: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used = used_in(target["expr"])
            assert used <= known, f"panel {panel['title']!r} uses {used - known}"
            shown |= used
    # every metric has a place on the dashboard
    assert shown == known
