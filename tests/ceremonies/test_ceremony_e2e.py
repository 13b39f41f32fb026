"""Back up in one CUSTODY_HOME, restore into a fresh one with a token of its own, all through
`custody` processes as custodians would run them (the restore at a terminal); the restored token
is read by a plain PyKCS11 session in a process of its own (not custody's reading of it).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from custody.hsm.devtoken import find_softhsm_module
from tests.ceremonies.conftest import Source
from tests.e2e.process import CUSTODY, clean_env, ok_json, run_custody
from tests.support.terminal import Terminal, screen_text

pytestmark = pytest.mark.slow

DUMP_SCRIPT = """
import json, os, sys, PyKCS11
lib = PyKCS11.PyKCS11Lib().load(sys.argv[1])
(slot,) = lib.getSlotList(tokenPresent=True)[:1]
session = lib.openSession(slot, PyKCS11.CKF_RW_SESSION)
session.login(os.environ["TEST_HSM_PIN"])
FLAGS = ["CKA_SENSITIVE", "CKA_EXTRACTABLE", "CKA_WRAP_WITH_TRUSTED", "CKA_ALWAYS_SENSITIVE",
         "CKA_NEVER_EXTRACTABLE", "CKA_MODIFIABLE", "CKA_COPYABLE"]
objects = []
for handle in session.findObjects([]):
    cls, label = session.getAttributeValue(handle, [PyKCS11.CKA_CLASS, PyKCS11.CKA_LABEL])
    found = {"class": PyKCS11.CKO[cls], "label": label}
    if cls == PyKCS11.CKO_PRIVATE_KEY:
        values = session.getAttributeValue(handle, [getattr(PyKCS11, f) for f in FLAGS])
        found["flags"] = dict(zip(FLAGS, values))
        value = PyKCS11.LowLevel.ckattrlist(1)
        value[0].SetType(PyKCS11.CKA_VALUE)
        code = session.lib.C_GetAttributeValue(session.session, handle, value)
        found["value"] = PyKCS11.CKR[code]
    objects.append(found)
session.logout()
print(json.dumps(sorted(objects, key=lambda o: (o["label"], o["class"]))))
"""


def _token_objects(home: Path) -> list[dict[str, Any]]:
    pins = json.loads((home / "hsm" / "pins.json").read_text())
    env = {
        **os.environ,
        "SOFTHSM2_CONF": str(home / "hsm" / "softhsm2.conf"),
        "TEST_HSM_PIN": pins["user_pin"],
    }
    done = subprocess.run(
        [sys.executable, "-c", DUMP_SCRIPT, find_softhsm_module()],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return list(json.loads(done.stdout))


def _rows(home: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """Wallet keys and wallets in the installation's database (its service keys left out)."""
    with sqlite3.connect(home / "custody.db") as db:
        keys = db.execute(
            "SELECT label, backup FROM keys WHERE algorithm = 'secp256k1' ORDER BY label"
        ).fetchall()
        wallets = db.execute(
            "SELECT w.name, c.name, w.address FROM wallets w JOIN chains c ON c.id = w.chain_id "
            "ORDER BY w.name"
        ).fetchall()
    return keys, wallets


def _restore(env: dict[str, str], folder: Path, shares: list[str]) -> Any:
    return subprocess.run(
        [str(Path(sys.prefix) / "bin" / "custody"), "ceremony", "restore", str(folder), "--json"],
        env=env,
        input="".join(f"{share}\n" for share in shares),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_restore_into_a_fresh_installation_with_its_own_token(
    source: Source, tmp_path: Path
) -> None:
    # The backup's token kept its keys and no KEK: that lived in the ceremony's session only.
    assert not [o for o in _token_objects(source.home) if o["class"] == "CKO_SECRET_KEY"]
    home = tmp_path / "restored"
    env = clean_env(home)
    ok_json(run_custody(["init", "--json"], env))
    before = _token_objects(home)
    assert source.key not in {o["label"] for o in before}

    # Two of five shares: refused, and neither the token nor the database got anything.
    refused = _restore(env, source.backup, source.shares[3:])
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "error: this backup needs 3 shares (any 3 of its custodians), 2 were given"
    )
    assert _token_objects(home) == before
    assert _rows(home) == ([], [])

    # Any three of five, typed at a terminal (hidden); a mistyped share is asked for again.
    screen = Terminal([CUSTODY, "ceremony", "restore", str(source.backup)], env)
    three = [source.shares[3], source.shares[0], source.shares[4]]
    screen.expect("Share 1 of 3: ")
    screen.send(three[0].replace(" ", "  ", 1).rsplit(" ", 1)[0] + "\r")  # last word left out
    screen.expect("share 1 is not a valid SLIP-39 share")
    for number, share in enumerate(three, start=1):
        screen.expect(f"Share {number} of 3: ")
        screen.send(f"{share}\r")
    done = screen.expect(
        r"restored 1 keys into token custody-dev from backup (\w+) \(shares 1, 4, 5"
    )
    assert done.group(1) == source.made["manifest_sha256"]
    for wallet in source.wallets:
        screen.expect(f"wallet {wallet['name']} on {wallet['chain']}: {wallet['address']}")
    assert screen.close() == 0
    assert not any(" ".join(share.split()[4:8]) in screen_text(screen.raw) for share in three)
    keys, wallets = _rows(home)
    assert keys == [(source.key, "trusted-wrap")]
    assert wallets == [(w["name"], w["chain"], w["address"]) for w in source.wallets]

    after = _token_objects(home)
    new = [o for o in after if o not in before]
    assert {(o["class"], o["label"]) for o in new} == {
        ("CKO_PRIVATE_KEY", source.key),
        ("CKO_PUBLIC_KEY", source.key),
    }
    (private,) = [o for o in new if o["class"] == "CKO_PRIVATE_KEY"]
    assert private["flags"] == {
        "CKA_SENSITIVE": True,
        "CKA_EXTRACTABLE": True,
        "CKA_WRAP_WITH_TRUSTED": True,
        "CKA_ALWAYS_SENSITIVE": False,  # the token knows the key came in wrapped
        "CKA_NEVER_EXTRACTABLE": False,
        "CKA_MODIFIABLE": False,
        "CKA_COPYABLE": False,
    }
    assert private["value"] == "CKR_ATTRIBUTE_SENSITIVE"
    assert not [o for o in after if o["class"] == "CKO_SECRET_KEY"]  # no KEK stayed behind
