"""`custody ceremony backup` at a terminal, as custodians meet it: names asked, then one custodian
at a time sees their share, proves they wrote it down (two words typed back, hidden), and the
screen is cleared before the next one steps up. Driven through a pseudo-terminal; the shares read
off the screen must rebuild the KEK that authenticates the manifest.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import shamir_mnemonic
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from custody.hsm import Backup, DevToken
from custody.ledger.canonical import canonical_bytes
from tests.e2e.process import CUSTODY, custody_env
from tests.support.installation import InstallationFactory

pytestmark = pytest.mark.slow

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """A process on a pseudo-terminal of its own (a new session: no controlling terminal of
    the test run to read passwords from)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
        self.process = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.raw = ""
        self._position = 0

    def expect(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """The next match of `pattern` in what the terminal showed (escape codes removed)."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.compile(pattern).search(_ANSI.sub("", self.raw), self._position)
            if found:
                self._position = found.end()
                return found
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.master], [], [], max(remaining, 0))
            if not ready:
                raise AssertionError(f"no {pattern!r} on the screen:\n{_ANSI.sub('', self.raw)}")
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"exited before {pattern!r}:\n{_ANSI.sub('', self.raw)}")
            self.raw += chunk.decode(errors="replace")

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> int:
        code = self.process.wait(timeout=60)
        os.close(self.master)
        return code


@pytest.fixture
def terminal_backup(
    installations: InstallationFactory, hsm_dev_token: DevToken, tmp_path: Path
) -> Iterator[tuple[Terminal, Path]]:
    inst = installations.make("sqlite")
    inst.wallet(backup=Backup.TRUSTED_WRAP)
    folder = tmp_path / "backup"
    env = custody_env(inst.env, CUSTODY_HSM_SO_PIN_FILE=str(hsm_dev_token.pin_file))
    terminal = Terminal(
        [CUSTODY, "ceremony", "backup", str(folder), "--shares", "2", "--threshold", "2"], env
    )
    try:
        yield terminal, folder
    finally:
        if terminal.process.poll() is None:
            terminal.process.kill()
            terminal.process.wait()
        installations.discard(inst)


def test_each_custodian_sees_only_their_share_and_proves_it_was_written_down(
    terminal_backup: tuple[Terminal, Path],
) -> None:
    screen, folder = terminal_backup
    for number, name in ((1, "ann"), (2, "bo")):
        screen.expect(rf"custodian who will hold share {number} of 2: ")
        screen.send(f"{name}\r")
    shares = []
    for number, name in ((1, "ann"), (2, "bo")):
        screen.expect(rf"{name}: step up to the screen alone, then press Enter")
        before = len(screen.raw)
        screen.send("\r")
        screen.expect(rf"Share {number} of 2 for {name} \(any 2 restore\)")
        assert "\x1b[2J" in screen.raw[before:]  # the screen was cleared for them
        grid = screen.expect(r"(?s)on paper:(.*?)From your paper, word (\d+): ")
        words = dict(re.findall(r"(\d+)\. ([a-z]+)", grid.group(1)))
        assert sorted(map(int, words)) == list(range(1, 34))
        share = [words[str(i)] for i in range(1, 34)]
        shares.append(" ".join(share))
        if number == 1:  # a word that is not on the paper: asked again
            screen.send("notaword\r")
            second = screen.expect(r"From your paper, word (\d+): ")
            screen.send(f"{share[int(second.group(1)) - 1]}\r")
            screen.expect("that is not what the share says")
            first = screen.expect(r"From your paper, word (\d+): ")
            word = share[int(first.group(1)) - 1]
        else:
            word = share[int(grid.group(2)) - 1]
        shown = len(screen.raw)
        screen.send(f"{word}\r")
        second = screen.expect(r"From your paper, word (\d+): ")
        echoed = re.sub(r"From your paper, word \d+: ", "", _ANSI.sub("", screen.raw[shown:]))
        assert word not in echoed  # typed back hidden
        screen.send(f"{share[int(second.group(1)) - 1]}\r")
    screen.expect("every share handed out; nothing of them was stored")
    assert screen.close() == 0

    assert shares[0] != shares[1]
    kek = shamir_mnemonic.combine_mnemonics(shares)
    body = json.loads((folder / "manifest.json").read_text())
    assert [c["name"] for c in body["custodians"]] == ["ann", "bo"]
    mac = body.pop("mac")
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"custody.backup.v1 manifest mac"
    ).derive(kek)
    assert hmac.new(key, canonical_bytes(body), hashlib.sha256).hexdigest() == mac
