"""An attacker with database access drops the append-only triggers and edits history: the check
(`custody.ledger.check.check`) names the damaged index and `custody ledger verify` exits non-zero.
Each test tampers with an installation of its own.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
import rfc8785
from sqlalchemy import text

from custody.ledger.check import TailRule, check
from custody.ledger.checkpoints import make_checkpoint, runtime_identity
from tests.ledger.conftest import drop_ledger_triggers
from tests.support.cli import invoke
from tests.support.installation import Installation

pytestmark = pytest.mark.slow

VICTIM = 3
# These installations sign no checkpoint: every entry is unsigned, and accepted as such, so that
# each test fails for the tampering it does and not for the missing signatures.
UNSIGNED = TailRule(allow=True)


def _entry(inst: Installation, index: int) -> bytes:
    with inst.runtime.db.engine.connect() as conn:
        return bytes(
            conn.execute(
                text('SELECT entry FROM ledger_entries WHERE "index" = :i'), {"i": index}
            ).scalar_one()
        )


def _size(inst: Installation) -> int:
    with inst.runtime.db.engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM ledger_entries")).scalar_one())


def _execute(inst: Installation, statement: str, **params: Any) -> None:
    with inst.runtime.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def _fault(inst: Installation) -> str:
    with inst.runtime.db.read() as session:
        report = check(session, tail=UNSIGNED)
    assert not report.ok, "the check missed the tampering"
    assert report.fault
    return report.fault


def _names(fault: str, index: int) -> bool:
    return re.search(rf"(?<![0-9]){index}(?![0-9])", fault) is not None


def _cli_refuses(inst: Installation) -> str:
    """`custody ledger verify` exits non-zero with one line on stderr; that line is returned."""
    human = invoke(["ledger", "verify", "--allow-unsigned-tail"], inst.env)
    assert human.returncode != 0, human.stdout
    lines = human.stderr.strip().splitlines()
    assert len(lines) == 1, human.stderr
    assert lines[0].startswith("error:")
    return lines[0]


def _untampered_is_ok(inst: Installation) -> None:
    with inst.runtime.db.read() as session:
        report = check(session, tail=UNSIGNED)
    assert report.ok, report.fault
    assert _size(inst) > VICTIM + 1


def test_untouched_installation_verifies(own_installation: Installation) -> None:
    _untampered_is_ok(own_installation)
    drop_ledger_triggers(own_installation)
    _untampered_is_ok(own_installation)
    rt = own_installation.runtime
    assert make_checkpoint(rt.db, rt.token(), runtime_identity(rt), on_fork=None) is not None
    verified = invoke(["ledger", "verify", "--json"], own_installation.env)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_changed_entry_bytes_are_found(own_installation: Installation) -> None:
    inst = own_installation
    _untampered_is_ok(inst)
    body = json.loads(_entry(inst, VICTIM))
    body["data"]["forged"] = "yes"
    drop_ledger_triggers(inst)
    _execute(
        inst,
        'UPDATE ledger_entries SET entry = :e WHERE "index" = :i',
        e=bytes(rfc8785.dumps(body)),
        i=VICTIM,
    )
    assert _names(_fault(inst), VICTIM)
    _cli_refuses(inst)


def test_changed_entry_with_matching_leaf_hash_is_found(own_installation: Installation) -> None:
    """The attacker recomputes the leaf hash too: the stored tree no longer matches."""
    inst = own_installation
    _untampered_is_ok(inst)
    body = json.loads(_entry(inst, VICTIM))
    body["actor"] = body["actor"]  # same columns, other data
    body["data"]["forged"] = "yes"
    forged = bytes(rfc8785.dumps(body))
    drop_ledger_triggers(inst)
    _execute(
        inst,
        'UPDATE ledger_entries SET entry = :e, leaf_hash = :h WHERE "index" = :i',
        e=forged,
        h=hashlib.sha256(b"\x00" + forged).digest(),
        i=VICTIM,
    )
    _fault(inst)
    _cli_refuses(inst)


def test_non_canonical_entry_bytes_are_found(own_installation: Installation) -> None:
    inst = own_installation
    _untampered_is_ok(inst)
    original = _entry(inst, VICTIM)
    spaced = json.dumps(json.loads(original), indent=1).encode()
    drop_ledger_triggers(inst)
    _execute(
        inst,
        'UPDATE ledger_entries SET entry = :e, leaf_hash = :h WHERE "index" = :i',
        e=spaced,
        h=hashlib.sha256(b"\x00" + spaced).digest(),
        i=VICTIM,
    )
    fault = _fault(inst)
    assert _names(fault, VICTIM)
    assert "canonical" in fault
    _cli_refuses(inst)


def test_entry_with_a_float_is_found(own_installation: Installation) -> None:
    inst = own_installation
    _untampered_is_ok(inst)
    body = json.loads(_entry(inst, VICTIM))
    body["data"]["amount"] = 1.5
    forged = bytes(rfc8785.dumps(body))
    drop_ledger_triggers(inst)
    _execute(
        inst,
        'UPDATE ledger_entries SET entry = :e, leaf_hash = :h WHERE "index" = :i',
        e=forged,
        h=hashlib.sha256(b"\x00" + forged).digest(),
        i=VICTIM,
    )
    assert _names(_fault(inst), VICTIM)
    _cli_refuses(inst)


def test_deleted_entry_is_found(own_installation: Installation) -> None:
    inst = own_installation
    _untampered_is_ok(inst)
    drop_ledger_triggers(inst)
    _execute(inst, 'DELETE FROM ledger_entries WHERE "index" = :i', i=VICTIM)
    assert _names(_fault(inst), VICTIM)
    assert _names(_cli_refuses(inst), VICTIM)


def test_verify_json_on_a_damaged_ledger_is_one_json_document(
    own_installation: Installation,
) -> None:
    """`--json` output must parse as one JSON object, also when verification fails."""
    inst = own_installation
    drop_ledger_triggers(inst)
    _execute(inst, 'DELETE FROM ledger_entries WHERE "index" = :i', i=VICTIM)
    machine = invoke(["ledger", "verify", "--json", "--allow-unsigned-tail"], inst.env)
    assert machine.returncode != 0
    assert len(machine.stderr.strip().splitlines()) == 1, machine.stderr
    body = json.loads(machine.stdout)
    assert isinstance(body, dict)
    assert "error" in body
    assert _names(json.dumps(body), VICTIM)


def test_deleted_last_entry_is_found(own_installation: Installation) -> None:
    inst = own_installation
    _untampered_is_ok(inst)
    last = _size(inst) - 1
    drop_ledger_triggers(inst)
    _execute(inst, 'DELETE FROM ledger_entries WHERE "index" = :i', i=last)
    assert _names(_fault(inst), last)
    _cli_refuses(inst)


def test_changed_leaf_hash_is_found(own_installation: Installation) -> None:
    inst = own_installation
    _untampered_is_ok(inst)
    drop_ledger_triggers(inst)
    _execute(
        inst,
        'UPDATE ledger_entries SET leaf_hash = :h WHERE "index" = :i',
        h=hashlib.sha256(b"forged").digest(),
        i=VICTIM,
    )
    fault = _fault(inst)
    assert _names(fault, VICTIM)
    assert "leaf hash" in fault
    _cli_refuses(inst)


def test_changed_kind_column_is_found(own_installation: Installation) -> None:
    inst = own_installation
    _untampered_is_ok(inst)
    drop_ledger_triggers(inst)
    _execute(
        inst, "UPDATE ledger_entries SET kind = 'request.signed' WHERE \"index\" = :i", i=VICTIM
    )
    assert _names(_fault(inst), VICTIM)
    _cli_refuses(inst)


def test_swapped_entries_are_found(own_installation: Installation) -> None:
    inst = own_installation
    first = VICTIM
    _untampered_is_ok(inst)
    a, b = _entry(inst, first), _entry(inst, first + 1)
    drop_ledger_triggers(inst)
    for index, entry in ((first, b), (first + 1, a)):
        _execute(
            inst,
            'UPDATE ledger_entries SET entry = :e, leaf_hash = :h WHERE "index" = :i',
            e=entry,
            h=hashlib.sha256(b"\x00" + entry).digest(),
            i=index,
        )
    assert _names(_fault(inst), first)
    _cli_refuses(inst)
