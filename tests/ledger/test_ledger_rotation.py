"""`custody ledger rotate-key`: a new checkpoint key, announced in the ledger and handed over in a
checkpoint both keys sign; the verifiers accept a history that spans several keys and refuse a
checkpoint signed by a key not current at its size, or a rotation the old key did not sign over.

Signatures are checked here with `cryptography` and hashlib from the C2SP formats (not with
custody's note code), and exports with the standalone verify.py in a process of its own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import text

from custody.ceremonies.rotation import Rotation, rotate_ledger_key
from custody.ledger.check import check
from custody.ledger.checkpoints import make_checkpoint, runtime_identity, runtime_schedule
from custody.ledger.export import export
from custody.ledger.verify import VerificationError, verify_export
from tests.ledger import rfc9162
from tests.ledger.conftest import attacker, checkpoint, grow
from tests.support.cli import invoke
from tests.support.installation import Installation, InstallationFactory

ROTATED = "ledger.key_rotated"


@pytest.fixture
def lite(installations: InstallationFactory) -> Iterator[Installation]:
    """A fresh SQLite installation of this test's own (the attacks need one backend only)."""
    inst = installations.make("sqlite")
    try:
        yield inst
    finally:
        installations.discard(inst)


def rotate(inst: Installation) -> Rotation:
    return rotate_ledger_key(inst.runtime, actor="test", reason="test rotation", on_fork=None)


# -- independent C2SP checks ----------------------------------------------------------------------


def note_key(origin: str, public: bytes) -> str:
    key_id = hashlib.sha256(origin.encode() + b"\n\x01" + public).digest()[:4]
    encoded = base64.b64encode(b"\x01" + public).decode()
    return f"{origin}+{key_id.hex()}+{encoded}"


def signed_by(note: str, origin: str, public: bytes) -> bool:
    """Whether the note carries a valid Ed25519 signature line by this key (signed-note spec)."""
    body, _, signatures = note.partition("\n\n")
    key_id = hashlib.sha256(origin.encode() + b"\n\x01" + public).digest()[:4]
    for line in signatures.splitlines():
        name, stamp = line.removeprefix("\u2014 ").split(" ")
        raw = base64.b64decode(stamp)
        if name == origin and raw[:4] == key_id:
            try:
                Ed25519PublicKey.from_public_bytes(public).verify(raw[4:], (body + "\n").encode())
            except InvalidSignature:
                return False
            return True
    return False


def public_key(inst: Installation, label: str) -> bytes:
    return inst.runtime.token().get_key(label).public_key


def all_entries(inst: Installation) -> list[bytes]:
    with inst.runtime.db.engine.connect() as conn:
        return [
            bytes(r[0])
            for r in conn.execute(text('SELECT entry FROM ledger_entries ORDER BY "index"'))
        ]


def notes(inst: Installation) -> dict[int, str]:
    with inst.runtime.db.engine.connect() as conn:
        rows = conn.execute(text("SELECT tree_size, note FROM ledger_checkpoints"))
        return {int(size): note for size, note in rows}


def verify_db(inst: Installation) -> str | None:
    keys = runtime_schedule(inst.runtime)
    with inst.runtime.db.read() as session:
        return check(session, keys).fault


def standalone(tmp_path: Path, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """An auditor's copy of verify.py, run with -I: nothing of custody on its path."""
    copy = tmp_path / "auditor" / "verify.py"
    if not copy.exists():
        copy.parent.mkdir()
        shutil.copy(Path(__file__).parents[2] / "custody" / "ledger" / "verify.py", copy)
    return subprocess.run(
        [sys.executable, "-I", str(copy), str(folder), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=copy.parent,
    )


def export_to(inst: Installation, folder: Path) -> None:
    keys = runtime_schedule(inst.runtime)
    with inst.runtime.db.read() as session:
        export(session, folder, keys)


# -- the honest history ----------------------------------------------------------------------------


def test_rotation_hands_over_in_one_checkpoint_both_keys_sign(
    fresh_installation: Installation, tmp_path: Path
) -> None:
    inst = fresh_installation
    origin = inst.settings.ledger_origin
    grow(inst, 5)
    before = checkpoint(inst)
    stale = runtime_identity(inst.runtime)  # what a running checkpointer held before

    done = rotate(inst)

    old_label = inst.settings.ledger_key_label
    assert done.old_label == old_label
    assert done.new_label.startswith(f"{old_label}-2")  # a suffix if the token has `-2` already
    old, new = public_key(inst, old_label), public_key(inst, done.new_label)
    assert old != new
    assert done.old_verifier_key == note_key(origin, old)
    assert done.new_verifier_key == note_key(origin, new)
    entries = all_entries(inst)
    rotation = json.loads(entries[done.ledger_index])
    assert rotation["kind"] == ROTATED
    assert rotation["data"]["old"] == {
        "label": old_label,
        "public_key": old.hex(),
        "verifier_key": note_key(origin, old),
    }
    assert rotation["data"]["new"]["verifier_key"] == note_key(origin, new)
    # the handover: the tree just after the rotation entry, signed by the old and the new key
    handover = done.handover_size
    assert handover == done.ledger_index + 1
    signed = notes(inst)
    assert signed[handover] == done.handover_note
    assert base64.b64decode(done.handover_note.split("\n")[2]) == rfc9162.mth(entries[:handover])
    assert signed_by(done.handover_note, origin, old)
    assert signed_by(done.handover_note, origin, new)
    # before it the old key alone; after it the new key alone, even through an identity made
    # before the rotation (a checkpointer that was already running)
    assert signed_by(before, origin, old)
    assert not signed_by(before, origin, new)
    grow(inst, 4)
    size = len(all_entries(inst))
    assert size >= handover + 4  # (the configuration seal of the new key may follow the entry)
    made = make_checkpoint(inst.runtime.db, inst.runtime.token(), stale, on_fork=None)
    assert made is not None
    assert made.tree_size == size
    assert signed_by(made.note, origin, new)
    assert not signed_by(made.note, origin, old)
    assert runtime_identity(inst.runtime).verifier_key == note_key(origin, new)
    assert verify_db(inst) is None

    folder = tmp_path / "export"
    export_to(inst, folder)
    assert (folder / "verifier-key").read_text() == note_key(origin, new) + "\n"
    listing = json.loads((folder / "verifier-keys.json").read_text())
    assert listing["origin"] == origin
    assert [(k["verifier_key"], k["first_size"], k["last_size"]) for k in listing["keys"]] == [
        (note_key(origin, old), 0, handover),
        (note_key(origin, new), handover, None),
    ]
    for pin in (
        [],
        ["--verifier-key", note_key(origin, old)],
        ["--verifier-key", note_key(origin, new)],
    ):
        done_run = standalone(tmp_path, folder, *pin)
        assert done_run.returncode == 0, done_run.stderr
        assert f"ok: {size} entries" in done_run.stdout


def test_two_rotations_in_a_row_and_the_cli(lite: Installation, tmp_path: Path) -> None:
    origin = lite.settings.ledger_origin
    first = invoke(["ledger", "rotate-key", "--reason", "yearly", "--json"], lite.env)
    assert first.returncode == 0, first.stderr
    second = invoke(["ledger", "rotate-key", "--json"], lite.env)
    assert second.returncode == 0, second.stderr
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    assert one["new"]["label"] == two["old"]["label"]
    assert two["new"]["label"].startswith(f"{lite.settings.ledger_key_label}-3")
    assert json.loads(all_entries(lite)[one["ledger_index"]])["data"]["reason"] == "yearly"
    keys = [public_key(lite, label) for label in (one["old"]["label"], one["new"]["label"])]
    keys.append(public_key(lite, two["new"]["label"]))
    signed = notes(lite)
    for n, size in enumerate((one["handover_size"], two["handover_size"])):
        assert signed_by(signed[size], origin, keys[n])
        assert signed_by(signed[size], origin, keys[n + 1])
    shown = invoke(["ledger", "public-key"], lite.env)
    assert shown.stdout.strip() == note_key(origin, keys[2])
    verified = invoke(["ledger", "verify"], lite.env)
    assert verified.returncode == 0, verified.stderr
    folder = tmp_path / "export"
    exported = invoke(["ledger", "export", str(folder)], lite.env)
    assert exported.returncode == 0, exported.stderr
    listing = json.loads((folder / "verifier-keys.json").read_text())
    assert [k["verifier_key"] for k in listing["keys"]] == [note_key(origin, k) for k in keys]
    run = standalone(tmp_path, folder, "--verifier-key", note_key(origin, keys[0]))
    assert run.returncode == 0, run.stderr
    cli = invoke(["ledger", "verify", "--export", str(folder)], lite.env)
    assert cli.returncode == 0, cli.stderr


def test_installations_sharing_a_token_never_share_a_new_key(
    installations: InstallationFactory,
) -> None:
    a, b = installations.make("sqlite"), installations.make("sqlite")
    try:
        assert a.settings.ledger_key_label == b.settings.ledger_key_label  # one template
        first, second = rotate(a), rotate(b)
        assert first.new_label != second.new_label
        assert first.new_verifier_key != second.new_verifier_key
        assert verify_db(a) is None
        assert verify_db(b) is None
    finally:
        installations.discard(a)
        installations.discard(b)


# -- what the verifiers refuse --------------------------------------------------------------------


def _rotated_export(inst: Installation, tmp_path: Path) -> tuple[Rotation, Path]:
    grow(inst, 3)
    checkpoint(inst)
    done = rotate(inst)
    grow(inst, 3)
    checkpoint(inst)
    folder = tmp_path / "export"
    export_to(inst, folder)
    assert verify_export(folder).ok
    return done, folder


def _history(folder: Path) -> list[dict[str, object]]:
    lines = (folder / "checkpoints.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _write_history(folder: Path, history: list[dict[str, object]]) -> None:
    (folder / "checkpoints.jsonl").write_text("".join(json.dumps(c) + "\n" for c in history))


def _sign_with(inst: Installation, label: str, note: str) -> str:
    """The same checkpoint body signed by another key of the token (an insider with the PIN)."""
    body = note.partition("\n\n")[0] + "\n"
    public = public_key(inst, label)
    origin = inst.settings.ledger_origin
    key_id = hashlib.sha256(origin.encode() + b"\n\x01" + public).digest()[:4]
    signature = inst.runtime.token().sign_ed25519(label, body.encode())
    return f"{body}\n\u2014 {origin} {base64.b64encode(key_id + signature).decode()}\n"


def test_a_checkpoint_signed_by_the_retired_key_is_refused(
    lite: Installation, tmp_path: Path
) -> None:
    done, folder = _rotated_export(lite, tmp_path)
    history = _history(folder)
    latest = history[-1]
    assert int(str(latest["tree_size"])) > done.handover_size
    # the old key still exists on the token: whoever holds it signs a later tree with it
    forged = _sign_with(lite, done.old_label, str(latest["note"]))
    assert signed_by(forged, lite.settings.ledger_origin, public_key(lite, done.old_label))
    _write_history(folder, [*history[:-1], {**latest, "note": forged}])
    with pytest.raises(VerificationError, match="which was not the ledger key at that size"):
        verify_export(folder)
    run = standalone(tmp_path, folder)
    assert run.returncode == 1
    assert "not the ledger key at that size" in run.stderr
    # and the same in the database
    attacker(
        lite,
        f"UPDATE ledger_checkpoints SET note = '{forged}' WHERE tree_size = {latest['tree_size']}",
    )
    fault = verify_db(lite)
    assert fault is not None
    assert "not the ledger key at that size" in fault


def test_a_checkpoint_before_the_rotation_signed_by_the_new_key_is_refused(
    lite: Installation, tmp_path: Path
) -> None:
    done, folder = _rotated_export(lite, tmp_path)
    history = _history(folder)
    early = next(c for c in history if int(str(c["tree_size"])) < done.handover_size)
    forged = _sign_with(lite, done.new_label, str(early["note"]))
    _write_history(folder, [{**c, "note": forged} if c is early else c for c in history])
    with pytest.raises(VerificationError, match="not the ledger key at that size"):
        verify_export(folder)


def test_a_rotation_the_old_key_did_not_sign_over_is_refused(
    lite: Installation, tmp_path: Path
) -> None:
    done, folder = _rotated_export(lite, tmp_path)
    history = _history(folder)
    # the handover carried by the new key alone
    handover = next(c for c in history if c["tree_size"] == done.handover_size)
    alone = _sign_with(lite, done.new_label, str(handover["note"]))
    _write_history(folder, [{**c, "note": alone} if c is handover else c for c in history])
    with pytest.raises(VerificationError, match="no valid signature by"):
        verify_export(folder)
    # the handover left out: later checkpoints cover the rotation, the old key signed none
    _write_history(folder, [c for c in history if c is not handover])
    report = verify_export(folder)
    assert not report.ok
    assert "is not signed over by the old key" in report.faults[0]
    run = standalone(tmp_path, folder)
    assert run.returncode == 1
    assert "is not signed over by the old key" in run.stderr


def test_a_key_list_that_disagrees_with_the_ledger_is_refused(
    lite: Installation, tmp_path: Path
) -> None:
    done, folder = _rotated_export(lite, tmp_path)
    listing = json.loads((folder / "verifier-keys.json").read_text())
    # a key list that moves the handover: the ledger's rotation entry says otherwise
    moved = json.loads(json.dumps(listing))
    moved["keys"][1]["first_size"] = done.handover_size - 1
    moved["keys"][0]["last_size"] = done.handover_size - 1
    (folder / "verifier-keys.json").write_text(json.dumps(moved))
    report = verify_export(folder)
    assert not report.ok
    assert "but the list of verifier keys has" in report.faults[0]
    # and a list that forgets the rotation: the new key's checkpoints have no key
    (folder / "verifier-keys.json").write_text(json.dumps({**listing, "keys": listing["keys"][:1]}))
    with pytest.raises(VerificationError, match="verifier-key is not the newest key"):
        verify_export(folder)
    (folder / "verifier-key").write_text(listing["keys"][0]["verifier_key"] + "\n")
    with pytest.raises(VerificationError, match="no valid signature by the ledger key"):
        verify_export(folder)
    # a pinned key that is none of the export's keys
    (folder / "verifier-keys.json").write_text(json.dumps(listing))
    (folder / "verifier-key").write_text(listing["keys"][1]["verifier_key"] + "\n")
    assert verify_export(folder).ok
    from custody.ledger.verify import parse_verifier_key

    stranger = parse_verifier_key(
        note_key(lite.settings.ledger_origin, public_key(lite, lite.settings.root_key_label))
    )
    with pytest.raises(VerificationError, match="not the pinned one"):
        verify_export(folder, pinned=stranger)


# -- interruptions, races, the database ------------------------------------------------------------


def test_a_rotation_interrupted_before_its_handover_is_finished_by_the_next_checkpoint(
    lite: Installation,
) -> None:
    from custody.ceremonies import rotation

    origin = lite.settings.ledger_origin
    grow(lite, 3)
    checkpoint(lite)
    old = runtime_identity(lite.runtime)
    new = rotation._generate(lite.runtime, f"{old.key_label}-2")
    # committed, and then the process died before signing anything
    index = rotation._record(lite.runtime, old, new, generation=1, actor="test", reason="crash")
    assert index + 1 not in notes(lite)
    grow(lite, 2)
    checkpoint(lite)  # what the checkpointer of `serve` does next
    signed = notes(lite)
    assert signed_by(signed[index + 1], origin, old.public_key)
    assert signed_by(signed[index + 1], origin, new.public_key)
    newest = signed[max(signed)]
    assert max(signed) == len(all_entries(lite))
    assert signed_by(newest, origin, new.public_key)
    assert not signed_by(newest, origin, old.public_key)
    assert verify_db(lite) is None


def test_a_second_rotation_from_the_same_key_is_refused_and_changes_nothing(
    lite: Installation,
) -> None:
    from custody.ceremonies import rotation
    from custody.ceremonies.errors import CeremonyRefused

    old = runtime_identity(lite.runtime)
    loser = rotation._generate(lite.runtime, f"{old.key_label}-2")
    rotate(lite)  # the other ceremony committed first
    before = len(all_entries(lite))
    with pytest.raises(CeremonyRefused, match="another ledger key rotation ran meanwhile"):
        rotation._record(lite.runtime, old, loser, generation=1, actor="test", reason="late")
    assert len(all_entries(lite)) == before
    assert runtime_identity(lite.runtime).public_key != loser.public_key
    assert verify_db(lite) is None


def test_the_database_history_is_held_to_the_same_rules(lite: Installation) -> None:
    grow(lite, 3)
    checkpoint(lite)
    done = rotate(lite)
    grow(lite, 3)
    checkpoint(lite)
    assert verify_db(lite) is None
    # the key list is append-only like the ledger
    with pytest.raises(Exception, match="append-only"), lite.runtime.db.engine.begin() as conn:
        conn.execute(text("UPDATE ledger_keys SET first_size = first_size + 1"))
    # a DBA removes the handover: the rotation entry is no longer signed over by the old key
    attacker(lite, f"DELETE FROM ledger_checkpoints WHERE tree_size = {done.handover_size}")
    fault = verify_db(lite)
    assert fault is not None
    assert "is not signed over by the old key" in fault


def test_cli_verify_with_the_old_key_pinned_and_the_api_answers_the_new_key(
    lite: Installation, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from custody.app import create_app
    from tests.support.api import Api

    origin = lite.settings.ledger_origin
    old = note_key(origin, public_key(lite, lite.settings.ledger_key_label))
    done = rotate(lite)
    pin = tmp_path / "old.key"
    pin.write_text(old + "\n")
    verified = invoke(["ledger", "verify", "--verifier-key", str(pin)], lite.env)
    assert verified.returncode == 0, verified.stderr
    stranger = tmp_path / "stranger.key"
    stranger.write_text(note_key(origin, public_key(lite, lite.settings.root_key_label)) + "\n")
    refused = invoke(["ledger", "verify", "--verifier-key", str(stranger)], lite.env)
    assert refused.returncode == 1
    assert "no valid signature by the ledger key" in refused.stderr
    with TestClient(create_app(lite.runtime, run_worker=False)) as http:
        answer = Api(http.request, lite.client(role="auditor")).call("GET", "/v1/ledger/public-key")
    assert answer.status_code == 200
    assert answer.json()["verifier_key"] == done.new_verifier_key
