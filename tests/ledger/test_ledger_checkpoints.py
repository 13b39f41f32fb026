"""Signed checkpoints and the auditor's verify, attacked by someone with database access.

Each test gets its own installation (SQLite and PostgreSQL): the attacker drops the append-only
triggers, edits history and even rebuilds the stored Merkle subtrees so that only the signed
checkpoints, a trusted checkpoint or a witness can tell. `verify` must catch each and say where.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from custody.ledger import service as ledger
from custody.ledger.checkpoints import make_checkpoint, runtime_identity
from custody.ledger.export import export
from custody.ledger.publish import publish
from custody.ledger.verify import read_witness, verify_export
from tests.ledger import rfc9162
from tests.ledger.conftest import (
    attacker,
    checkpoint,
    entry_bytes,
    grow,
    key,
    rebuild_nodes,
    rewrite_entry,
    verify_db,
)
from tests.support.installation import Installation

ENTRIES = 37


# -- the honest case ----------------------------------------------------------------------------


def test_checkpoint_is_a_signed_note_the_standalone_verifier_accepts(fresh: Installation) -> None:
    grow(fresh, ENTRIES)
    note = checkpoint(fresh)
    lines = note.split("\n")
    size = int(lines[1])
    assert lines[0] == fresh.settings.ledger_origin
    assert lines[3] == ""
    assert lines[4].startswith("\u2014 " + fresh.settings.ledger_origin + " ")
    with fresh.runtime.db.engine.connect() as conn:
        entries = [
            bytes(r[0])
            for r in conn.execute(text('SELECT entry FROM ledger_entries ORDER BY "index"'))
        ]
    assert base64.b64decode(lines[2]) == rfc9162.mth(entries[:size])
    # the signature verifies with the public key from the HSM, independently of custody's code
    stamp = base64.b64decode(lines[4].rsplit(" ", 1)[1])
    public = fresh.runtime.token().get_key(fresh.settings.ledger_key_label).public_key
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    Ed25519PublicKey.from_public_bytes(public).verify(
        stamp[4:], "\n".join(lines[:3]).encode() + b"\n"
    )
    assert verify_db(fresh) is None
    assert (
        make_checkpoint(
            fresh.runtime.db,
            fresh.runtime.token(),
            runtime_identity(fresh.runtime),
            on_fork=None,
        )
        is None
    )  # nothing new to sign


def test_export_verifies_with_the_standalone_file_alone(
    fresh: Installation, tmp_path: Path
) -> None:
    grow(fresh, ENTRIES)
    checkpoint(fresh)
    grow(fresh, 5)
    checkpoint(fresh)
    with fresh.runtime.db.read() as session:
        result = export(session, tmp_path / "export", runtime_identity(fresh.runtime).verifier_key)
    assert result.checkpoints == 3  # the one `custody init` signed, and these two
    lines = (tmp_path / "export" / "entries.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert len(lines) - 1 == result.tree_size
    assert rfc9162.mth(lines[:-1]) == base64.b64decode(
        (tmp_path / "export" / "checkpoint").read_text().split("\n")[2]
    )
    # an auditor's copy of the verifier, run outside the package, with -I (no custody on the path)
    standalone = tmp_path / "auditor" / "verify.py"
    standalone.parent.mkdir()
    shutil.copy(Path(__file__).parents[2] / "custody" / "ledger" / "verify.py", standalone)
    done = subprocess.run(
        [sys.executable, "-I", str(standalone), str(tmp_path / "export")],
        capture_output=True,
        text=True,
        check=False,
        cwd=standalone.parent,
    )
    assert done.returncode == 0, done.stderr
    assert f"ok: {result.tree_size} entries" in done.stdout
    # and the same file refuses an edited export, naming the entry
    edited = lines[:-1]
    edited[-1] = edited[-1].replace(b'"n":"', b'"n":"7')
    assert edited[-1] != lines[-2]
    (tmp_path / "export" / "entries.jsonl").write_bytes(b"\n".join(edited) + b"\n")
    done = subprocess.run(
        [sys.executable, "-I", str(standalone), str(tmp_path / "export")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "checkpoint at size" in done.stderr


# -- the attacks ----------------------------------------------------------------------------------


def test_edited_entry_with_rebuilt_tree_is_caught_by_the_checkpoint(fresh: Installation) -> None:
    with fresh.runtime.db.read() as session:
        victim = ledger.size(session) + 2  # one of the entries grown here, whatever init wrote
    grow(fresh, ENTRIES)
    checkpoint(fresh)
    attacker(fresh)
    edited = entry_bytes(fresh, victim).replace(b'"n":"', b'"n":"1')
    assert edited != entry_bytes(fresh, victim)
    rewrite_entry(fresh, victim, edited)
    rebuild_nodes(fresh)
    fault = verify_db(fresh)
    assert (fault is not None and f"checkpoint at size {ENTRIES + 3}" in fault) or "size" in (
        fault or ""
    )


def test_edited_entry_without_leaf_fix_is_named(fresh: Installation) -> None:
    with fresh.runtime.db.read() as session:
        victim = ledger.size(session) + 3  # one of the entries grown here, whatever init wrote
    grow(fresh, ENTRIES)
    checkpoint(fresh)
    edited = entry_bytes(fresh, victim).replace(b'"n":"', b'"n":"9')
    assert edited != entry_bytes(fresh, victim)
    attacker(fresh)
    with fresh.runtime.db.engine.begin() as conn:
        conn.execute(
            text('UPDATE ledger_entries SET entry = :e WHERE "index" = :i'),
            {"e": edited, "i": victim},
        )
    assert verify_db(fresh) == f"index {victim}: stored leaf hash does not match the entry"


def test_deleted_entry_is_named(fresh: Installation) -> None:
    grow(fresh, ENTRIES)
    checkpoint(fresh)
    attacker(fresh, 'DELETE FROM ledger_entries WHERE "index" = 5')
    fault = verify_db(fresh)
    assert fault is not None
    assert fault.startswith("index 5:")


def test_reordered_entries_are_named(fresh: Installation) -> None:
    grow(fresh, ENTRIES)
    checkpoint(fresh)
    a, b = entry_bytes(fresh, 8), entry_bytes(fresh, 9)
    attacker(fresh)
    rewrite_entry(fresh, 8, b)
    rewrite_entry(fresh, 9, a)
    rebuild_nodes(fresh)
    fault = verify_db(fresh)
    assert fault is not None
    assert fault.startswith("index 8:")


def test_truncated_tail_is_caught(fresh: Installation) -> None:
    grow(fresh, ENTRIES)
    size = int(checkpoint(fresh).split("\n")[1])
    attacker(
        fresh,
        f'DELETE FROM ledger_entries WHERE "index" >= {size - 4}',
        f"UPDATE ledger_head SET size = {size - 4}",
        'DELETE FROM ledger_nodes WHERE ("index" + 1) * 1 > 0 AND level > 0',
    )
    rebuild_nodes(fresh)
    fault = verify_db(fresh)
    assert fault is not None
    assert "truncated or rolled back" in fault


def test_truncation_with_checkpoints_removed_is_caught_by_a_trusted_checkpoint(
    fresh: Installation,
) -> None:
    grow(fresh, ENTRIES)
    trusted = checkpoint(fresh)  # the auditor saved this one earlier
    size = int(trusted.split("\n")[1])
    attacker(
        fresh,
        f'DELETE FROM ledger_entries WHERE "index" >= {size - 2}',
        f"UPDATE ledger_head SET size = {size - 2}",
        "DELETE FROM ledger_checkpoints",
    )
    rebuild_nodes(fresh)
    # Without checkpoints every entry is unsigned, which verify refuses by itself ...
    assert "no signed checkpoint" in (verify_db(fresh) or "")
    # ... and once that is waved through, the database alone looks consistent
    assert verify_db(fresh, allow_unsigned_tail=True) is None
    fault = verify_db(fresh, [trusted])
    assert fault is not None
    assert "truncated or rolled back" in fault


def test_fork_is_caught_by_a_witness(fresh: Installation, tmp_path: Path) -> None:
    grow(fresh, ENTRIES)
    checkpoint(fresh)
    witness = tmp_path / "witness.jsonl"
    assert publish(fresh.runtime.db, str(witness)) == 2  # init's checkpoint, and this one
    assert publish(fresh.runtime.db, str(witness)) == 0  # nothing new
    # rewrite history, rebuild the tree and re-sign: only the witness still knows the old root
    attacker(fresh, "DELETE FROM ledger_checkpoints")
    rewrite_entry(fresh, 20, entry_bytes(fresh, 20).replace(b'"n":"', b'"n":"2'))
    rebuild_nodes(fresh)
    checkpoint(fresh)
    assert verify_db(fresh) is None
    k = key(fresh)
    notes = [cp.note for cp in read_witness(witness, k)]
    fault = verify_db(fresh, notes)
    assert fault is not None
    assert "a fork" in fault


def test_checkpoint_signed_by_another_key_is_refused(fresh: Installation) -> None:
    grow(fresh, ENTRIES)
    note = checkpoint(fresh)
    body = note.split("\n\n")[0] + "\n"
    forger = Ed25519PrivateKey.generate()
    stamp = base64.b64encode(key(fresh).key_id + forger.sign(body.encode())).decode()
    forged = f"{body}\n\u2014 {fresh.settings.ledger_origin} {stamp}\n"
    attacker(fresh, f"UPDATE ledger_checkpoints SET note = '{forged}'")
    fault = verify_db(fresh)
    assert fault is not None
    assert "no valid signature by the ledger key" in fault


def test_replaced_checkpoint_root_is_refused(fresh: Installation) -> None:
    grow(fresh, ENTRIES)
    checkpoint(fresh)
    attacker(fresh)
    with fresh.runtime.db.engine.begin() as conn:
        conn.execute(text("UPDATE ledger_checkpoints SET root_hash = :r"), {"r": b"\x00" * 32})
    fault = verify_db(fresh)
    assert fault is not None
    assert "columns differ from its signed note" in fault


def test_export_verify_catches_a_removed_entry(fresh: Installation, tmp_path: Path) -> None:
    grow(fresh, ENTRIES)
    checkpoint(fresh)
    with fresh.runtime.db.read() as session:
        export(session, tmp_path, runtime_identity(fresh.runtime).verifier_key)
    path = tmp_path / "entries.jsonl"
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"\n".join(lines[:4] + lines[5:]) + b"\n")
    report = verify_export(tmp_path)
    assert not report.ok
    assert report.faults[0].startswith("index 4:")


def test_a_pinned_verifier_key_refuses_an_export_resigned_with_another_key(
    fresh: Installation, tmp_path: Path
) -> None:
    from custody.ledger.note import verifier_key
    from custody.ledger.verify import VerificationError

    grow(fresh, ENTRIES)
    checkpoint(fresh)
    with fresh.runtime.db.read() as session:
        export(session, tmp_path, runtime_identity(fresh.runtime).verifier_key)
    genuine = key(fresh)
    assert verify_export(tmp_path, pinned=genuine).ok
    # whoever rewrites the export also ships their own key: only a pinned key notices
    forger = Ed25519PrivateKey.generate()
    forged_key = verifier_key(fresh.settings.ledger_origin, forger.public_key().public_bytes_raw())
    (tmp_path / "verifier-key").write_text(forged_key + "\n")
    with pytest.raises(VerificationError, match="not the pinned one"):
        verify_export(tmp_path, pinned=genuine)
