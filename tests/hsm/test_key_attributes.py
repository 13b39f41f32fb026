"""Both halves of every generated key pair are read-only and not copyable, as the token itself
reports them to a PyKCS11 session of another process (not custody's own reading of them), and
the token refuses to change them.

SoftHSM 2.6.1 accepts CKA_MODIFIABLE and CKA_COPYABLE false in the generation templates of EC
and EdDSA key pairs and reports both back; PyKCS11 has no C_CopyObject, so copying is judged
by the attribute alone. A change is tried with the label it already has: harmless if allowed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from custody.hsm import Algorithm, DevToken, Pkcs11Token

READ_SCRIPT = """
import json, os, sys, PyKCS11
lib = PyKCS11.PyKCS11Lib().load(sys.argv[1])
slot = next(s for s in lib.getSlotList(tokenPresent=True)
            if lib.getTokenInfo(s).label.rstrip() == sys.argv[2])
session = lib.openSession(slot, PyKCS11.CKF_RW_SESSION)
session.login(os.environ["TEST_HSM_PIN"])
label = sys.argv[3]
found = {}
for name, cls in (("private", PyKCS11.CKO_PRIVATE_KEY), ("public", PyKCS11.CKO_PUBLIC_KEY)):
    (handle,) = session.findObjects([(PyKCS11.CKA_CLASS, cls), (PyKCS11.CKA_LABEL, label)])
    modifiable, copyable = session.getAttributeValue(
        handle, [PyKCS11.CKA_MODIFIABLE, PyKCS11.CKA_COPYABLE])
    try:
        session.setAttributeValue(handle, [(PyKCS11.CKA_LABEL, label)])
        change = "allowed"
    except PyKCS11.PyKCS11Error as exc:
        change = PyKCS11.CKR[exc.value]
    found[name] = {"modifiable": modifiable, "copyable": copyable, "change": change}
session.logout()
print(json.dumps(found))
"""


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_generated_key_pairs_cannot_be_changed_or_copied(
    hsm_dev_token: DevToken,
    hsm_token: Pkcs11Token,
    hsm_pin: str,
    hsm_label: str,
    algorithm: Algorithm,
) -> None:
    hsm_token.generate_key(hsm_label, algorithm)
    argv = [sys.executable, "-c", READ_SCRIPT, hsm_dev_token.module_path, hsm_dev_token.label]
    done = subprocess.run(
        [*argv, hsm_label],
        env={**os.environ, "TEST_HSM_PIN": hsm_pin},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    frozen = {"modifiable": False, "copyable": False, "change": "CKR_ACTION_PROHIBITED"}
    assert json.loads(done.stdout) == {"private": frozen, "public": frozen}
