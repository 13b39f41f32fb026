"""What a limit costs the signer: one claim, sign and record with N signed requests in the limit's
window.

`python -m bench.limits [--requests 200] [--runs 30]`: one installation (SQLite, the development
token, `custody demo seed`) whose policy has a 24 h limit on `hot-eth`; N withdrawals are created
and signed, then `runs` more are created and signed one at a time, each `SignerWorker.run_once`
timed. The signer's re-check counts the N (and those signed since) from their own evidence
(custody.limits.usage), each verified once per process: a starting signer verifies them before
its first claim, outside the ledger lock (`warm_ms`), and its claims then verify only what is
new. Then the limit decision alone (`decide`), counted from the rows (intake), and from the
evidence with nothing verified yet and with all of it verified. Prints the medians as JSON;
docs/benchmarks.md keeps them by hand, before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from bench.client import withdrawal
from bench.policy_eval import machine
from custody.app import create_app
from custody.client import Client
from custody.policy.loader import load_policy_text
from custody.policy_versions.service import apply
from custody.runtime import Runtime
from custody.seals.hooks import install
from custody.settings import load_settings
from custody.setup.demo import seed
from custody.setup.init import initialise
from custody.signing.worker import SignerWorker

POLICY = """
version: 1
limits:
  - {id: daily, window: 24h, scope: {wallets: [hot-eth], assets: [ETH]},
     max_amount: "1000000000000000000000"}
rules:
  - {id: allow-all, match: {type: withdrawal}, action: allow}
"""


def measure(requests: int, runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        os.environ["CUSTODY_HOME"] = home
        settings = load_settings(Path(home))
        initialise(settings)
        rt = Runtime(settings)
        try:
            install(rt)
            demo = seed(rt, "bench")
            with rt.db.write() as session:
                apply(session, load_policy_text(POLICY, "bench.yaml"), source_name="b", actor="b")
            key = serialization.load_pem_private_key(demo.client_key_path.read_bytes(), None)
            assert isinstance(key, Ed25519PrivateKey)
            with TestClient(create_app(rt, run_worker=False)) as http:
                client = Client("http://testserver", demo.client_id, key, http=http)
                for nonce in range(requests):
                    client.create(withdrawal(nonce))
                filler = SignerWorker(rt, worker_id="bench-fill")
                assert filler.drain() == requests
                # A new worker in a new process would start with nothing verified; the memo is
                # per process, so drop what the filling worker's claims verified.
                _forget()
                warm_ms = _warm(rt)
                worker = SignerWorker(rt, worker_id="bench")
                samples = []
                for nonce in range(requests, requests + runs):
                    client.create(withdrawal(nonce))
                    started = time.perf_counter()
                    assert worker.run_once()
                    samples.append(time.perf_counter() - started)
                decisions = _decisions(rt, runs)
        finally:
            rt.close()
    return {
        "requests": requests,
        **({} if warm_ms is None else {"warm_ms": warm_ms}),
        "first_ms": samples[0] * 1000,
        "median_ms": statistics.median(samples[1:]) * 1000,
        **decisions,
    }


def _decisions(rt: Runtime, runs: int) -> dict[str, float]:
    """The limit decision alone, as intake takes it (rows) and as the signer does (evidence),
    with nothing verified yet and with everything verified: the part this change adds."""
    from custody.decisions.service import decide
    from custody.intake.decoders import decode
    from custody.intake.jsonbody import parse_object

    try:
        from custody.signing.evidence import CountedEvidence
    except ImportError:  # the code before limits counted evidence
        return {}
    results = {}
    with rt.db.read() as session:
        draft = decode(session, parse_object(json.dumps(withdrawal(10**6)).encode()))
        facts = draft.facts("demo-desk")
        variants = {
            "rows_ms": lambda: decide(session, facts, exclude_request=None),
            "evidence_cold_ms": lambda: (
                _forget(),
                decide(session, facts, exclude_request=None, believe=CountedEvidence()),
            ),
            "evidence_warm_ms": lambda: decide(
                session, facts, exclude_request=None, believe=CountedEvidence()
            ),
        }
        for name, action in variants.items():
            action()
            timings = []
            for _ in range(runs):
                started = time.perf_counter()
                action()
                timings.append(time.perf_counter() - started)
            results[name] = statistics.median(timings) * 1000
    return results


def _warm(rt: Runtime) -> float | None:
    """A starting signer verifies what limits count before its first claim, outside the lock."""
    try:
        from custody.signing.evidence import warm
    except ImportError:  # the code before limits counted evidence
        return None
    started = time.perf_counter()
    with rt.db.read() as session:
        warm(session)
    return (time.perf_counter() - started) * 1000


def _forget() -> None:
    try:
        from custody.signing import evidence
    except ImportError:  # pragma: no cover
        return
    memo = getattr(evidence, "_believed", None)
    if isinstance(memo, dict):
        memo.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    print(json.dumps({**machine(), **measure(args.requests, args.runs)}))


if __name__ == "__main__":
    main()
