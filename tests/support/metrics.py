"""Reading `/metrics` over HTTP as Prometheus would (its own exposition parser)."""

from __future__ import annotations

import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str) -> tuple[Samples, float]:
    """Every sample of `/metrics`, keyed by name and labels, and how long the scrape took."""
    started = time.monotonic()
    answer = httpx.get(f"{base_url}/metrics", timeout=30)
    took = time.monotonic() - started
    assert answer.status_code == 200, answer.text
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, took


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}
