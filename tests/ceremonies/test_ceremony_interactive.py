"""`custody ceremony backup` at a terminal, as custodians meet it: names asked, then one custodian
at a time sees their share, proves they wrote it down (two words typed back, hidden), and the
screen is cleared before the next one steps up. Driven through a pseudo-terminal; the shares read
off the screen must rebuild the KEK that authenticates the manifest.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
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
from tests.support.terminal import Terminal, screen_text

pytestmark = pytest.mark.slow


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
        echoed = re.sub(r"From your paper, word \d+: ", "", screen_text(screen.raw[shown:]))
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


def test_cards_show_each_share_boxed_one_custodian_at_a_time_and_never_on_disk(
    installations: InstallationFactory, hsm_dev_token: DevToken, tmp_path: Path
) -> None:
    inst = installations.make("sqlite")
    inst.wallet(backup=Backup.TRUSTED_WRAP)
    folder = tmp_path / "backup"
    env = custody_env(inst.env, CUSTODY_HSM_SO_PIN_FILE=str(hsm_dev_token.pin_file))
    args = [CUSTODY, "ceremony", "backup", str(folder), "--shares", "2", "--threshold", "2"]
    screen = Terminal([*args, "--custodian", "ann", "--custodian", "bo", "--cards"], env)
    try:
        shares = []
        for number, name in ((1, "ann"), (2, "bo")):
            screen.expect(rf"{name}: step up to the screen alone, then press Enter")
            before = len(screen.raw)
            screen.send("\r")
            card = screen.expect(r"(?s)(\+-+\+.*?\+-+\+).*?From your paper, word (\d+): ")
            assert "\x1b[2J" in screen.raw[before:]  # cleared before the card
            text = screen_text(card.group(1))
            assert "SHARE CARD" in text
            assert re.search(rf"Custodian:\s+{name}\b", text)
            assert re.search(rf"Share:\s+{number} of 2\b", text)
            assert re.search(r"Threshold:\s+any 2 shares restore", text)
            assert re.search(r"Installation:\s+\S+", text)
            assert re.search(r"Date:\s+\d{4}-\d\d-\d\d", text)
            assert all(line.startswith("|") for line in text.splitlines()[1:-1] if line)
            words = dict(re.findall(r"(\d+)\. ([a-z]+)", text))
            assert sorted(map(int, words)) == list(range(1, 34))
            share = [words[str(i)] for i in range(1, 34)]
            shares.append(" ".join(share))
            screen.send(f"{share[int(card.group(2)) - 1]}\r")
            second = screen.expect(r"From your paper, word (\d+): ")
            screen.send(f"{share[int(second.group(1)) - 1]}\r")
        screen.expect("every share handed out; nothing of them was stored")
        assert screen.close() == 0
        shamir_mnemonic.combine_mnemonics(shares)  # the cards hold shares that rebuild the KEK
        written = [p for p in [*inst.home.rglob("*"), *folder.rglob("*")] if p.is_file()]
        assert any(p.name == "transcript.json" for p in written)
        everything = b"".join(p.read_bytes() for p in written)
        for share in shares:
            assert " ".join(share.split()[4:8]).encode() not in everything
    finally:
        if screen.process.poll() is None:
            screen.process.kill()
            screen.process.wait()
        installations.discard(inst)
