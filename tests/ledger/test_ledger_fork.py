"""A checkpoint never signs a forked tree (issue 9, §2.1).

An insider with database access rewrites history, recomputes the stored leaf hashes and subtrees,
and waits for the next checkpoint to bless the fork. Before signing, custody must prove that the
tree it signs extends the last signed checkpoint; otherwise it refuses, signs nothing, says so in
one line (CLI) or loudly (checkpointer) and records the detection for a later freeze.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from custody.errors import CustodyError
from custody.freezes.breakers import freeze_on_fork
from custody.ledger import service as ledger
from custody.ledger.checkpointer import start_checkpointer
from custody.ledger.checkpoints import make_checkpoint, runtime_identity
from tests.ledger.conftest import (
    attacker,
    checkpoint,
    entry_bytes,
    grow,
    rebuild_nodes,
    rewrite_entry,
    verify_db,
    without_checkpoints,
)
from tests.support.cli import invoke
from tests.support.installation import Installation

ENTRIES = 37


def signed_sizes(inst: Installation) -> list[int]:
    with inst.runtime.db.engine.connect() as conn:
        rows = conn.execute(text("SELECT tree_size FROM ledger_checkpoints ORDER BY tree_size"))
        return [int(r[0]) for r in rows]


def try_checkpoint(inst: Installation) -> Any:
    return make_checkpoint(
        inst.runtime.db, inst.runtime.token(), runtime_identity(inst.runtime), on_fork=None
    )


def refused(inst: Installation) -> str:
    """make_checkpoint raises, and no checkpoint was added; the error message is returned."""
    before = signed_sizes(inst)
    with pytest.raises(CustodyError) as caught:
        try_checkpoint(inst)
    assert signed_sizes(inst) == before, "a checkpoint was stored although the tree is forked"
    return caught.value.message


def detections(inst: Installation) -> list[Any]:
    from custody.ledger.forks import fork_detections

    with inst.runtime.db.read() as session:
        return list(fork_detections(session))


def forged(inst: Installation, index: int) -> bytes:
    """Entry `index` with another actor, still canonical JSON."""
    original = entry_bytes(inst, index)
    edited = original.replace(b'"actor":"', b'"actor":"forged-', 1)
    assert edited != original
    return edited


def grow_to(inst: Installation, size: int) -> None:
    with inst.runtime.db.read() as session:
        grow(inst, size - ledger.size(session))


def fork_history(inst: Installation, victim: int) -> int:
    """Sign a checkpoint at size ENTRIES, then rewrite entry `victim` below it and rebuild every
    stored hash."""
    grow_to(inst, ENTRIES)
    size = int(checkpoint(inst).split("\n")[1])
    assert size == ENTRIES
    attacker(inst)
    rewrite_entry(inst, victim, forged(inst, victim))
    rebuild_nodes(inst)
    return size


# -- the honest case ----------------------------------------------------------------------------


def test_consecutive_checkpoints_at_many_sizes_are_signed(fresh: Installation) -> None:
    """Every shape of frontier (sizes around powers of two) extends to the next checkpoint."""
    for count in (1, 1, 2, 3, 8, 13, 16, 31, 1, 64):
        grow(fresh, count)
        checkpoint(fresh)
    assert try_checkpoint(fresh) is None  # nothing new
    assert verify_db(fresh) is None
    assert detections(fresh) == []


# -- forks below the last checkpoint ------------------------------------------------------------


@pytest.mark.parametrize("victim", [0, 11, 33, 36])
def test_rewritten_history_with_rebuilt_tree_is_not_signed(
    fresh: Installation, victim: int
) -> None:
    """37 = 32 + 4 + 1: the victims sit under each of the three subtrees of the signed tree."""
    size = fork_history(fresh, victim)
    grow(fresh, 5)
    message = refused(fresh)
    assert "fork" in message
    assert f"size {size}" in message
    found = detections(fresh)
    assert len(found) == 1
    assert found[0].checkpoint_size == size
    assert found[0].tree_size == size + 5
    assert found[0].reason == message


def test_a_persisting_fork_is_recorded_once(fresh: Installation) -> None:
    fork_history(fresh, 11)
    grow(fresh, 2)
    first = refused(fresh)
    grow(fresh, 2)
    assert refused(fresh) == first
    assert len(detections(fresh)) == 1


def test_a_truncated_and_regrown_log_is_not_signed(fresh: Installation) -> None:
    grow(fresh, ENTRIES)
    size = int(checkpoint(fresh).split("\n")[1])
    attacker(
        fresh,
        f'DELETE FROM ledger_entries WHERE "index" >= {size - 4}',
        f"UPDATE ledger_head SET size = {size - 4}",
    )
    rebuild_nodes(fresh)
    grow(fresh, 10)  # new entries take the indices of the removed ones
    assert "fork" in refused(fresh)


def test_a_rolled_back_log_is_refused(fresh: Installation) -> None:
    """Before, make_checkpoint saw nothing new (the log is shorter) and said nothing."""
    grow(fresh, ENTRIES)
    size = int(checkpoint(fresh).split("\n")[1])
    attacker(
        fresh,
        f'DELETE FROM ledger_entries WHERE "index" >= {size - 4}',
        f"UPDATE ledger_head SET size = {size - 4}",
    )
    message = refused(fresh)
    assert "truncated or rolled back" in message
    assert detections(fresh)[0].tree_size == size - 4


def test_a_previous_checkpoint_re_signed_by_another_key_is_refused(fresh: Installation) -> None:
    """The attacker also replaces the last checkpoint with one for the forked root, signed by a
    key of their own: only the HSM's key counts."""
    from custody.ledger.nodes import NodeCache, SessionNodes
    from custody.ledger.tree import root

    size = fork_history(fresh, 11)
    with fresh.runtime.db.read() as session:
        forked_root = root(SessionNodes(session, NodeCache()), size)
    origin = fresh.settings.ledger_origin
    body = f"{origin}\n{size}\n{base64.b64encode(forked_root).decode()}\n"
    forger = Ed25519PrivateKey.generate()
    key_id = bytes.fromhex(runtime_identity(fresh.runtime).verifier_key.split("+")[1])
    stamp = base64.b64encode(key_id + forger.sign(body.encode())).decode()
    with fresh.runtime.db.engine.begin() as conn:
        conn.execute(
            text("UPDATE ledger_checkpoints SET note = :n, root_hash = :r WHERE tree_size = :s"),
            {"n": f"{body}\n\u2014 {origin} {stamp}\n", "r": forked_root, "s": size},
        )
    grow(fresh, 3)
    assert "signature" in refused(fresh)


# -- damage after the last checkpoint -----------------------------------------------------------


def test_an_unsigned_entry_whose_bytes_no_longer_match_its_leaf_is_refused(
    fresh: Installation,
) -> None:
    grow(fresh, ENTRIES)
    size = int(checkpoint(fresh).split("\n")[1])
    grow(fresh, 5)
    attacker(fresh)
    edited = forged(fresh, size + 2)
    with fresh.runtime.db.engine.begin() as conn:
        conn.execute(
            text('UPDATE ledger_entries SET entry = :e WHERE "index" = :i'),
            {"e": edited, "i": size + 2},
        )
    assert f"index {size + 2}" in refused(fresh)


def test_the_first_checkpoint_re_hashes_every_entry(fresh: Installation) -> None:
    without_checkpoints(fresh)
    grow(fresh, ENTRIES)
    attacker(fresh)
    edited = forged(fresh, 3)
    with fresh.runtime.db.engine.begin() as conn:
        conn.execute(text('UPDATE ledger_entries SET entry = :e WHERE "index" = 3'), {"e": edited})
    assert "index 3" in refused(fresh)


def test_a_damaged_subtree_after_the_checkpoint_is_refused(fresh: Installation) -> None:
    """Proofs are served from stored subtrees: a checkpoint must not sign over damaged ones."""
    from custody.ledger.nodes import clear_caches

    grow_to(fresh, 30)
    checkpoint(fresh)
    grow_to(fresh, 70)  # completes the subtree of leaves 0..63
    attacker(fresh)
    with fresh.runtime.db.engine.begin() as conn:
        conn.execute(
            text('UPDATE ledger_nodes SET hash = :h WHERE level = 6 AND "index" = 0'),
            {"h": b"\x00" * 32},
        )
    clear_caches()
    assert "subtree" in refused(fresh)


# -- how the refusal surfaces ---------------------------------------------------------------------


def test_cli_checkpoint_refuses_a_fork_in_one_line(fresh: Installation) -> None:
    fork_history(fresh, 11)
    grow(fresh, 3)
    before = signed_sizes(fresh)
    human = invoke(["ledger", "checkpoint"], fresh.env)
    assert human.returncode != 0, human.stdout
    lines = human.stderr.strip().splitlines()
    assert len(lines) == 1, human.stderr
    assert lines[0].startswith("error:")
    assert "fork" in lines[0]
    machine = invoke(["ledger", "checkpoint", "--json"], fresh.env)
    assert machine.returncode != 0
    assert "fork" in json.loads(machine.stdout)["error"]["message"]
    assert signed_sizes(fresh) == before
    assert len(detections(fresh)) == 1


def test_the_checkpointer_logs_a_fork_loudly_signs_nothing_and_freezes_signing(
    fresh: Installation, caplog: pytest.LogCaptureFixture
) -> None:
    fork_history(fresh, 11)
    grow(fresh, 3)
    before = signed_sizes(fresh)
    caplog.set_level(logging.WARNING, logger="custody.ledger")
    object.__setattr__(fresh.settings, "checkpoint_interval_seconds", 0.05)
    stop = threading.Event()
    thread = start_checkpointer(fresh.runtime, stop, on_fork=freeze_on_fork)
    assert thread is not None
    try:
        deadline = time.monotonic() + 20
        while not any(r.levelno >= logging.CRITICAL for r in caplog.records):
            assert signed_sizes(fresh) == before, "the checkpointer signed the forked tree"
            assert time.monotonic() < deadline, "the checkpointer said nothing"
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    critical = [r for r in caplog.records if r.levelno >= logging.CRITICAL]
    assert "fork" in critical[0].getMessage()
    assert signed_sizes(fresh) == before
    assert len(detections(fresh)) == 1
    # ... and the built-in ledger-consistency breaker froze all signing, once (issue 9 §3)
    frozen = [entry["data"] for entry in fresh.ledger_entries("signing.frozen")]
    assert [(d["scope"], d["source"]) for d in frozen] == [
        ("installation", "breaker:ledger-consistency")
    ]
    assert frozen[0]["evidence"]["detail"] == detections(fresh)[0].reason
