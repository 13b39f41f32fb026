"""The PKCS#11 library is initialised per process: a forked child never uses the parent's."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import subprocess
import sys
import textwrap
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import coincurve

from custody.hsm import DevToken, HsmError, KeyInfo, PinIncorrect, Pkcs11Token

DIGEST = hashlib.sha256(b"signed in a child").digest()


def _child(
    conn: Connection, dev: DevToken, pin: str, parent_token: Pkcs11Token, key_label: str
) -> None:
    result: dict[str, Any] = {}
    try:
        # First, while this process has no login: the token itself must judge the PIN.
        try:
            Pkcs11Token(dev.module_path, dev.label, pin + "-wrong")
        except PinIncorrect as exc:
            result["wrong_pin"] = (str(exc), repr(exc))
        try:
            parent_token.get_key(key_label)
        except HsmError as exc:
            result["parent_token"] = str(exc)
        with Pkcs11Token(dev.module_path, dev.label, pin) as token:
            result["signature"] = token.sign_secp256k1(key_label, DIGEST).to_bytes65()
    except BaseException as exc:  # report anything to the parent rather than dying silently
        result["error"] = repr(exc)
    conn.send(result)


def test_forked_child_opens_its_own_token_and_signs(
    hsm_dev_token: DevToken, hsm_pin: str, hsm_token: Pkcs11Token, hsm_secp256k1_key: KeyInfo
) -> None:
    hsm_token.sign_secp256k1(hsm_secp256k1_key.label, DIGEST)  # the parent is initialised
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    args = (sender, hsm_dev_token, hsm_pin, hsm_token, hsm_secp256k1_key.label)
    child = context.Process(target=_child, args=args)
    child.start()
    result = receiver.recv()
    child.join(timeout=30)
    assert child.exitcode == 0
    assert "error" not in result, result.get("error")

    recovered = coincurve.PublicKey.from_signature_and_message(
        result["signature"], DIGEST, hasher=None
    )
    assert recovered.format(compressed=False) == hsm_secp256k1_key.public_key
    assert "another process" in result["parent_token"]
    assert "PIN is incorrect" in result["wrong_pin"][0]
    assert all(hsm_pin not in text for text in result["wrong_pin"])
    # The child's exit neither finalised nor logged out the parent's library.
    hsm_token.sign_secp256k1(hsm_secp256k1_key.label, DIGEST)


FORK_UNAWARE_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from custody.hsm import HsmError, Pkcs11Token

    module, label, pin = sys.argv[1], sys.argv[2], os.environ["TEST_HSM_PIN"]
    parent = Pkcs11Token(module, label, pin)
    pid = os.fork()
    if pid == 0:
        try:
            Pkcs11Token(module, label, pin)
            code = 1
        except HsmError as exc:
            print(exc)
            code = 0 if "kept its parent's state" in str(exc) else 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    parent.close()
    sys.exit(os.waitstatus_to_exitcode(status))
    """
)


def test_library_that_ignores_fork_is_refused_in_the_child(
    hsm_dev_token: DevToken, hsm_pin: str, tmp_path: Path
) -> None:
    # Same token store, but SoftHSM told to keep its state across fork() (its default).
    conf = hsm_dev_token.conf_path.read_text().replace(
        "library.reset_on_fork = true", "library.reset_on_fork = false"
    )
    conf_path = tmp_path / "softhsm2.conf"
    conf_path.write_text(conf)
    env = {**os.environ, "SOFTHSM2_CONF": str(conf_path), "TEST_HSM_PIN": hsm_pin}
    result = subprocess.run(
        [sys.executable, "-c", FORK_UNAWARE_SCRIPT, hsm_dev_token.module_path, hsm_dev_token.label],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reset_on_fork" in result.stdout
