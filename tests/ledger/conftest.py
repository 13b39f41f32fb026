from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy import text

from custody.ledger import service as ledger
from custody.ledger.check import TailRule, check
from custody.ledger.checkpoints import make_checkpoint, runtime_identity
from custody.ledger.events import EventKind
from custody.ledger.verify import VerifierKey, parse_checkpoint, parse_verifier_key
from tests.ledger import rfc9162
from tests.support.installation import Installation


@pytest.fixture
def own_installation(fresh_installation: Installation) -> Installation:
    """A fresh installation of this test's own, with some history: free to be tampered with."""
    inst = fresh_installation
    inst.wallet()
    inst.client()
    inst.allow_all_policy()
    inst.wallet()
    return inst


def drop_ledger_triggers(inst: Installation) -> None:
    """What an attacker with database access does first."""
    if inst.backend == "postgres":
        statements = ["DROP TRIGGER ledger_entries_no_update ON ledger_entries"]
    else:
        statements = [
            "DROP TRIGGER ledger_entries_no_update",
            "DROP TRIGGER ledger_entries_no_delete",
        ]
    with inst.runtime.db.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


# -- attacks on signed checkpoints (each test on a fresh installation of its own) ---------------


@pytest.fixture
def fresh(fresh_installation: Installation) -> Installation:
    return fresh_installation


def grow(inst: Installation, count: int) -> None:
    with inst.runtime.db.write() as session:
        for i in range(count):
            ledger.append(session, EventKind.LEDGER_INITIALISED, "test", {"n": str(i)})


def checkpoint(inst: Installation) -> str:
    made = make_checkpoint(
        inst.runtime.db, inst.runtime.token(), runtime_identity(inst.runtime), on_fork=None
    )
    assert made is not None
    return made.note


def key(inst: Installation) -> VerifierKey:
    return parse_verifier_key(runtime_identity(inst.runtime).verifier_key)


def verify_db(
    inst: Installation, external: Sequence[str] = (), *, allow_unsigned_tail: bool = False
) -> str | None:
    k = key(inst)
    with inst.runtime.db.read() as session:
        return check(
            session,
            k,
            external=[parse_checkpoint(n, k) for n in external],
            tail=TailRule(allow=allow_unsigned_tail),
        ).fault


def without_checkpoints(inst: Installation) -> None:
    """A ledger no checkpoint covers, as an installation made before `custody init` signed its
    first one would be (or one whose checkpoints are gone)."""
    attacker(inst, "DELETE FROM ledger_checkpoints")


def attacker(inst: Installation, *statements: str) -> None:
    """Drop every append-only trigger, then run `statements` as a DBA would."""
    with inst.runtime.db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            for table, trigger in [
                ("ledger_entries", "ledger_entries_no_update"),
                ("ledger_entries", "ledger_entries_no_truncate"),
                ("ledger_nodes", "ledger_nodes_append_only"),
                ("ledger_checkpoints", "ledger_checkpoints_append_only"),
            ]:
                conn.execute(text(f"DROP TRIGGER IF EXISTS {trigger} ON {table}"))
        else:
            for trigger in [
                "ledger_entries_no_update",
                "ledger_entries_no_delete",
                "ledger_nodes_no_update",
                "ledger_nodes_no_delete",
                "ledger_checkpoints_no_update",
                "ledger_checkpoints_no_delete",
            ]:
                conn.execute(text(f"DROP TRIGGER IF EXISTS {trigger}"))
        for statement in statements:
            conn.execute(text(statement))


def rebuild_nodes(inst: Installation) -> None:
    """The careful attacker recomputes the stored subtrees so they match the edited entries."""
    from custody.ledger.nodes import clear_caches
    from custody.ledger.tree import completed_nodes

    with inst.runtime.db.engine.begin() as conn:
        leaves = [
            bytes(r[0])
            for r in conn.execute(text('SELECT leaf_hash FROM ledger_entries ORDER BY "index"'))
        ]
        conn.execute(text("DELETE FROM ledger_nodes"))
        stored: dict[tuple[int, int], bytes] = {}
        for i, leaf in enumerate(leaves):
            stored[(0, i)] = leaf
            for level, index, digest in completed_nodes(lambda lv, ix: stored[(lv, ix)], i, leaf):
                stored[(level, index)] = digest
                conn.execute(
                    text('INSERT INTO ledger_nodes (level, "index", hash) VALUES (:l, :i, :h)'),
                    {"l": level, "i": index, "h": digest},
                )
    clear_caches()


def rewrite_entry(inst: Installation, index: int, new_bytes: bytes) -> None:
    leaf = rfc9162.h(b"\x00" + new_bytes)
    with inst.runtime.db.engine.begin() as conn:
        conn.execute(
            text('UPDATE ledger_entries SET entry = :e, leaf_hash = :h WHERE "index" = :i'),
            {"e": new_bytes, "h": leaf, "i": index},
        )


def entry_bytes(inst: Installation, index: int) -> bytes:
    with inst.runtime.db.engine.connect() as conn:
        return bytes(
            conn.execute(
                text('SELECT entry FROM ledger_entries WHERE "index" = :i'), {"i": index}
            ).scalar_one()
        )
