"""Policy evaluation latency: a 200-rule policy with 5 limits, p50 and p99 per decision.

    .venv/bin/python -m bench.policy_eval [--evaluations N]

Requests are a mix (withdrawals to listed and unlisted addresses, contract calls, trades,
messages) so decisions come from early rules, late rules and the default deny, which walks all
200 rules; each evaluation includes the limits lookup and the reason text. The worst case (default
deny) is reported on its own. Results go to docs/benchmarks.md between `<!-- policy-eval -->`
markers, leaving the other sections alone.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from custody.chains import Amount
from custody.policy import (
    EvaluationContext,
    PriceKey,
    ReferencePrices,
    RequestFacts,
    UsdPrice,
    evaluate,
    load_policy_text,
)

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- policy-eval -->"
LISTED = [f"0x{index:040x}" for index in range(1, 41)]
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def policy_text(rules: int = 200) -> str:
    entries = "\n".join(
        f"    - {{chain: ethereum, address: '{a}', label: l{i}"
        + (", activation_delay: 24h}" if i % 5 == 0 else "}")
        for i, a in enumerate(LISTED)
    )
    limits = (
        "  - {id: l0, wallets: [hot-eth], asset: ETH, window: 24h, max_amount: '1000'}\n"
        "  - {id: l1, window: 1h, scope: {wallets: ['hot-*'], assets: [ETH]}, max_amount: '9'}\n"
        "  - {id: l2, window: 7d, scope: {chains: [ethereum]}, max_count: 100}\n"
        "  - {id: l3, window: 1h, scope: {clients: [desk-1, desk-2]}, max_count: 20}\n"
        "  - {id: l4, window: 24h, scope: {wallets: ['cold-*'], assets: [USDT]},"
        " max_amount: '10', on_exceed: {require_approvals: {count: 1, group: risk}}}\n"
    )
    body = [
        "  - {id: deny-unlisted, match: {type: withdrawal, destination_not_in: t}, action: deny}"
    ]
    for i in range(rules - 3):
        kind = i % 5
        if kind == 0:
            match = (
                f"{{type: withdrawal, wallets: ['desk{i}-*'], assets: [ETH],"
                f" amount_lte: '{10**18 + i}'}}"
            )
        elif kind == 1:
            match = f"{{type: contract_call, contracts: ['0x{i:040x}'], methods: ['0xa9059cbb']}}"
        elif kind == 2:
            match = f"{{type: trade, venues: [venue{i}], amount_usd_lte: '{1000 + i}.00'}}"
        elif kind == 3:
            match = f"{{wallets: [w{i}, 'x{i}-*'], chains: [ethereum], clients: [c{i}]}}"
        else:
            match = (
                f"{{type: withdrawal, wallets: [w{i}], amount_usd_gt: '{i}.00',"
                " time_window: {days: [mon, tue], hours: '08:00-18:00', tz: Europe/Zurich}}"
            )
        body.append(f"  - {{id: r{i}, match: {match}, action: allow}}")
    body.append(
        "  - {id: big, match: {type: withdrawal, assets: [ETH], amount_gt: '5'}, action:"
        " {require_approvals: {all_of: [{count: 2, group: t}, {count: 1, group: r}]}}}"
    )
    body.append("  - {id: small, match: {type: withdrawal}, action: allow}")
    return (
        f"version: 1\nallowlists:\n  t:\n{entries}\nlimits:\n{limits}rules:\n"
        + "\n".join(body)
        + "\n"
    )


def requests() -> list[RequestFacts]:
    base = RequestFacts("withdrawal", "hot-eth", "ethereum", "ETH", Amount(3), LISTED[3], "desk-1")
    return [
        base,
        replace(base, amount=Amount(10**18)),
        replace(base, destination=LISTED[5]),
        replace(base, destination="0x" + "ee" * 20),
        replace(
            base, type="contract_call", contract="0x" + "ab" * 20, method_selector="0xa9059cbb"
        ),
        replace(base, type="trade", venue="nowhere", destination=None),
        replace(base, type="sign_message", amount=Amount(0), destination=None),
    ]


def measure(evaluations: int) -> dict[str, float]:
    loaded = load_policy_text(policy_text(), "bench.yaml")
    assert len(loaded.policy.rules) == 200
    assert len(loaded.policy.limits) == 5
    prices = ReferencePrices(
        {
            PriceKey("ethereum", "ETH"): UsdPrice.parse("3000.00", 18, NOW),
            PriceKey("ethereum", "USDT"): UsdPrice.parse("1.00", 6, NOW),
        },
        max_age=timedelta(minutes=15),
    )
    context = EvaluationContext(NOW, prices, policy_applied_at=NOW - timedelta(days=2))
    mix, rng = requests(), random.Random(7)
    worst = mix[-1]
    for facts in mix * 200:  # warm up caches and the allocator
        evaluate(loaded, facts, context)
    samples, worst_samples = [], []
    clock = time.perf_counter_ns
    for _ in range(evaluations):
        facts = rng.choice(mix)
        start = clock()
        evaluate(loaded, facts, context)
        samples.append(clock() - start)
        start = clock()
        evaluate(loaded, worst, context)
        worst_samples.append(clock() - start)
    return {
        **{f"mix_{k}": v for k, v in percentiles(samples).items()},
        **{f"worst_{k}": v for k, v in percentiles(worst_samples).items()},
        "evaluations": evaluations,
    }


def percentiles(samples: list[int]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000  # noqa: E731
    return {"p50": pick(0.50), "p99": pick(0.99), "max": ordered[-1] / 1000}


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "date": datetime.now(UTC).date().isoformat(),
    }


def section(results: dict[str, float], host: dict[str, str]) -> str:
    return "\n".join(
        [
            MARK,
            "## Policy evaluation latency",
            "",
            f"- date: {host['date']}",
            f"- machine: {host['cpu']}, {host['cores']} cores; Python {host['python']}",
            f"- set-up: `python -m bench.policy_eval`; 200 rules (globs, amounts, USD amounts, time"
            f" windows, contracts, venues, allowlists with activation delays), 5 limits;"
            f" {int(results['evaluations']):,} evaluations in one thread, each with a context",
            "",
            "| requests | p50 (µs) | p99 (µs) | max (µs) |",
            "| --- | ---: | ---: | ---: |",
            f"| mix (early rules to default deny) | {results['mix_p50']:.1f}"
            f" | {results['mix_p99']:.1f} | {results['mix_max']:.1f} |",
            f"| worst case: default deny after all 200 rules | {results['worst_p50']:.1f}"
            f" | {results['worst_p99']:.1f} | {results['worst_max']:.1f} |",
            "",
            "The goal is a p99 under 1 ms (1000 µs) in-process.",
            MARK,
        ]
    )


def write(path: Path, text: str) -> None:
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    if MARK in current:
        before, _, rest = current.partition(MARK)
        _, _, after = rest.partition(MARK)
        current = before + text + after
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    path.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=20_000)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    results = measure(args.evaluations)
    text = section(results, machine())
    write(args.output, text)
    print(text)


if __name__ == "__main__":
    main()
