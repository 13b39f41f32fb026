"""Ledger benchmarks, written to docs/benchmarks.md.

    .venv/bin/python -m bench.ledger [--entries 1000000] [--appends 20000]

1. appends per second with group commit (many entries per transaction) on SQLite and PostgreSQL,
   through `custody.ledger.service.append` (canonical bytes, leaf hash, subtree nodes);
2. full verification of a 1,000,000-entry export with the standalone verifier;
3. inclusion proof time at 1,000,000 entries from the database (cold and warm node cache);
4. the proof a checkpoint needs before it is signed (custody.ledger.consistency) at 100,000
   entries, for several distances from the last checkpoint (`--checkpoint-only` runs just this).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import insert

from bench.report import replace_section
from bench.run import _cpu
from custody.ledger import proofs
from custody.ledger import service as ledger
from custody.ledger.consistency import provable_root
from custody.ledger.events import EventKind
from custody.ledger.merkle import leaf_hash
from custody.ledger.nodes import NodeCache, SessionNodes, clear_caches
from custody.ledger.note import sign_checkpoint, verifier_key
from custody.ledger.tree import completed_nodes, root
from custody.ledger.verify import TreeBuilder, parse_verifier_key, verify_export
from custody.store import Database
from custody.store.migrate import upgrade_to_head
from custody.store.models import LedgerCheckpoint, LedgerEntry, LedgerHead, LedgerNode

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DATA = {
    "request": "req_7f5f1159427fb0980138e883",
    "type": "withdrawal",
    "wallet": "hot-eth",
    "chain": "ethereum",
    "asset": "ETH",
    "amount": "10000000000000000",
    "destination": "0xe3139eABD9dCaDCDC9e6f2848Ef4AfD85Dc0c1B7",
    "digest": "0xecd640234a8de508da6562c77a326056d3fbc7d1b52ca1e769f0a64cae4fef75",
}


def appends_per_second(url: str, count: int, batch: int) -> float:
    upgrade_to_head(url)
    db = Database(url)
    start = time.perf_counter()
    for first in range(0, count, batch):
        with db.write() as session:
            for _ in range(min(batch, count - first)):
                ledger.append(session, EventKind.REQUEST_CREATED, "client:bench", DATA)
    elapsed = time.perf_counter() - start
    db.dispose()
    return count / elapsed


def _entry(i: int) -> bytes:
    body = {
        "actor": "client:bench",
        "data": DATA,
        "index": i,
        "kind": "request.created",
        "time": "2026-11-25T12:00:00.000000Z",
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def verification_seconds(entries: int, directory: Path) -> tuple[float, float]:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    tree = TreeBuilder()
    with (directory / "entries.jsonl").open("wb") as handle:
        for i in range(entries):
            line = _entry(i)
            handle.write(line + b"\n")
            tree.append(leaf_hash(line))
    origin = "bench.custody/ledger"
    signed = sign_checkpoint(
        origin, entries, tree.root(), key_name=origin, public_key=public, sign=key.sign
    )
    (directory / "checkpoint").write_text(signed.note)
    (directory / "verifier-key").write_text(verifier_key(origin, public) + "\n")
    times = []
    for check_format in (True, False):
        start = time.perf_counter()
        report = verify_export(directory, workers=os.cpu_count() or 1, check_format=check_format)
        times.append(time.perf_counter() - start)
        if not report.ok or report.size != entries:
            raise RuntimeError(f"verification failed: {report.faults}")
    return times[0], times[1]


def proof_times(url: str, entries: int, samples: int) -> tuple[float, float, float]:
    upgrade_to_head(url)
    db = Database(url)
    _bulk_load(db, entries)
    rng = random.Random(1)
    cold, warm = [], []
    with db.read() as session:
        for _ in range(samples):
            index = rng.randrange(entries)
            clear_caches()
            start = time.perf_counter()
            proofs.inclusion(session, index, entries)
            cold.append(time.perf_counter() - start)
            start = time.perf_counter()
            proofs.inclusion(session, index, entries)
            warm.append(time.perf_counter() - start)
    db.dispose()
    p99 = sorted(cold)[int(0.99 * len(cold))]
    return statistics.median(cold) * 1000, p99 * 1000, statistics.median(warm) * 1000


def checkpoint_proof_times(url: str, entries: int) -> list[tuple[str, str]]:
    """Median time of the pre-signing proof at `entries`, by entries since the last checkpoint.

    Unsigned is what the tree stored before (one root from the stored subtrees, nothing proven);
    `since 0` is the first checkpoint, which re-hashes every entry.
    """
    upgrade_to_head(url)
    db = Database(url)
    _bulk_load(db, entries)
    origin = "bench.custody/ledger"
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    verifier = parse_verifier_key(verifier_key(origin, public))
    results = []
    with db.read() as session:
        unproven = _median(lambda: root(SessionNodes(session, NodeCache()), entries))
        results.append((f"checkpoint at {entries:,} entries, root only (before)", unproven))
        for since in (1, 100, 10_000, entries):
            old = entries - since
            last = None
            if old:
                old_root = root(SessionNodes(session, NodeCache()), old)
                signed = sign_checkpoint(
                    origin, old, old_root, key_name=origin, public_key=public, sign=key.sign
                )
                last = LedgerCheckpoint(tree_size=old, root_hash=old_root, note=signed.note)
            took = _median(partial(provable_root, session, last, verifier, entries))
            label = "first checkpoint, every entry" if not old else f"{since:,} entries since"
            results.append((f"checkpoint proof at {entries:,} entries, {label}", took))
    db.dispose()
    return results


def _median(run: Callable[[], object], repeat: int = 5) -> str:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return f"{statistics.median(times) * 1000:.2f} ms"


def _bulk_load(db: Database, entries: int) -> None:
    """Rows as `append` would write them, inserted in bulk (appending 1M one by one is the
    first benchmark's job, not this one's)."""
    nodes: dict[tuple[int, int], bytes] = {}
    now = datetime.now(UTC)
    rows: list[dict[str, object]] = []
    node_rows: list[dict[str, object]] = []
    with db.write() as session:
        for i in range(entries):
            line = _entry(i)
            leaf = leaf_hash(line)
            nodes[(0, i)] = leaf
            rows.append(
                {
                    "index": i,
                    "time": now,
                    "kind": "request.created",
                    "actor": "client:bench",
                    "entry": line,
                    "leaf_hash": leaf,
                }
            )
            for level, index, digest in completed_nodes(lambda lv, ix: nodes[(lv, ix)], i, leaf):
                nodes[(level, index)] = digest
                node_rows.append({"level": level, "index": index, "hash": digest})
            if len(rows) == 20_000:
                session.execute(insert(LedgerEntry), rows)
                session.execute(insert(LedgerNode), node_rows)
                rows, node_rows = [], []
        if rows:
            session.execute(insert(LedgerEntry), rows)
        if node_rows:
            session.execute(insert(LedgerNode), node_rows)
        session.get(LedgerHead, 1).size = entries  # type: ignore[union-attr]


def postgres_url() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            name = f"custody_bench_{secrets.token_hex(4)}"
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error:
        return None
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def drop(url: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--verify-only", action="store_true", help="only the verification run")
    parser.add_argument("--checkpoint-entries", type=int, default=100_000)
    parser.add_argument(
        "--checkpoint-only", action="store_true", help="only the pre-signing proof, printed"
    )
    args = parser.parse_args()
    results: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="custody-bench-ledger-") as tmp:
        tmpdir = Path(tmp)
        proof = checkpoint_proof_times(f"sqlite:///{tmpdir / 'proof.db'}", args.checkpoint_entries)
        for row in proof:
            print(row)
        if args.checkpoint_only:
            return
        results.extend(proof)
        if not args.verify_only:
            for label, given in [
                ("SQLite", f"sqlite:///{tmpdir / 'appends.db'}"),
                ("PostgreSQL", None),
            ]:
                url = given or postgres_url()
                if url is None:
                    results.append((f"appends/s, {label}", "skipped: no server"))
                    continue
                try:
                    for batch in (1, args.batch):
                        count = args.appends if batch > 1 else min(args.appends, 2_000)
                        rate = appends_per_second(url, count, batch)
                        results.append(
                            (f"appends/s, {label}, {batch} per transaction", f"{rate:,.0f}")
                        )
                        print(results[-1])
                finally:
                    if url.startswith("postgresql"):
                        drop(url)
        export_dir = tmpdir / "export"
        export_dir.mkdir()
        full, hashes = verification_seconds(args.entries, export_dir)
        results.append(
            (
                f"full verification of {args.entries:,} entries: every entry's form, leaf and root "
                f"(standalone verifier, {os.cpu_count()} processes)",
                f"{full:.2f} s",
            )
        )
        results.append(
            ("the same with `--hashes-only` (leaves, roots, signatures)", f"{hashes:.2f} s")
        )
        print(results[-2:])
        if args.verify_only:
            return
        cold, cold99, warm = proof_times(f"sqlite:///{tmpdir / 'proofs.db'}", args.entries, 500)
        results.append(
            (
                f"inclusion proof at {args.entries:,} entries, SQLite, cold cache p50 / p99",
                f"{cold:.2f} ms / {cold99:.2f} ms",
            )
        )
        results.append(("same, warm node cache, p50", f"{warm:.3f} ms"))
        print(results[-2:])
    lines = [
        "## Ledger",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d}; machine: {_cpu()}, {os.cpu_count()} cores",
        f"- appends: `ledger.append` with canonical bytes, leaf hash and subtree nodes; "
        f"{args.appends:,} entries in transactions of {args.batch} (and 2,000 one per "
        "transaction); SQLite with synchronous=FULL in WAL mode",
        "",
        "| measure | result |",
        "| --- | ---: |",
        *[f"| {name} | {value} |" for name, value in results],
        "",
        "Aims (issue 5): 5,000 appends/s with group commit; 1,000,000 entries verified in under "
        "5 s; an inclusion proof at 1,000,000 entries in under 2 ms.",
    ]
    replace_section(args.output, "ledger", "\n".join(lines))


if __name__ == "__main__":
    main()
