"""`custody freeze`, `custody unfreeze`, `custody freezes`: one line per answer or error."""

from __future__ import annotations

import pytest

from tests.freezes.conftest import active_freezes, cli, cli_json, freeze_rows
from tests.support.installation import Installation


def test_freeze_is_idempotent_and_listed(home: Installation) -> None:
    wallet = home.wallet()
    first = cli(home, "freeze", "--wallet", wallet.name, "--reason", "  audit in progress ")
    assert first.returncode == 0, first.stderr
    assert f"signing for wallet {wallet.name} frozen (freeze 1): audit in progress" in first.stdout
    again = cli(home, "freeze", "--wallet", wallet.name, "--reason", "audit in progress")
    assert "already frozen for that reason (freeze 1); nothing changed" in again.stdout
    assert len(home.ledger_entries("signing.frozen")) == 1

    listed = cli_json(home, "freezes")
    assert [(f["id"], f["wallet"], f["reason"], f["source"]) for f in listed] == [
        (1, wallet.name, "audit in progress", "operator")
    ]
    assert listed[0]["actor"].startswith("operator:")
    table = cli(home, "freezes")
    assert "audit in progress" in table.stdout

    cli_json(home, "unfreeze", "--freeze", "1", "--reason", "audit done")
    assert cli_json(home, "freezes") == []
    assert "nothing is frozen" in cli(home, "freezes").stdout
    history = cli_json(home, "freezes", "--all")
    assert [(f["id"], f["lifted_by"] is not None, f["lift_reason"]) for f in history] == [
        (1, True, "audit done")
    ]


def test_unfreeze_lifts_every_freeze_of_its_scope(home: Installation) -> None:
    cli_json(home, "freeze", "--reason", "one")
    cli_json(home, "freeze", "--reason", "two")
    lifted = cli_json(home, "unfreeze", "--reason", "both explained")
    assert [f["reason"] for f in lifted["lifted"]] == ["one", "two"]
    assert lifted["pending"] == []
    assert active_freezes(home) == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["freeze", "--reason", ""], "a reason is required"),
        (["freeze", "--reason", "   "], "a reason is required"),
        (["freeze", "--reason", "tab\tinside"], "printable text"),
        (["freeze", "--wallet", "nope", "--reason", "x"], "unknown wallet 'nope'"),
        (["unfreeze", "--reason", "x"], "all signing is not frozen"),
        (["unfreeze", "--wallet", "nope", "--reason", "x"], "unknown wallet 'nope'"),
        (["unfreeze", "--freeze", "99", "--reason", "x"], "no freeze 99"),
        (["unfreeze", "--freeze", "1", "--wallet", "w", "--reason", "x"], "not both"),
        (["unfreeze", "--reason", ""], "a reason is required"),
    ],
)
def test_bad_commands_say_why_in_one_line_and_change_nothing(
    home: Installation, args: list[str], words: str
) -> None:
    before = home.counts()
    result = cli(home, *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    assert words in lines[0]
    assert home.counts() == before
    assert freeze_rows(home) == 0


def test_freeze_needs_a_reason_option(home: Installation) -> None:
    result = cli(home, "freeze")
    assert result.returncode == 2
    assert "--reason" in result.stderr
    assert freeze_rows(home) == 0


def test_a_lifted_freeze_cannot_be_lifted_again(home: Installation) -> None:
    frozen = cli_json(home, "freeze", "--reason", "once")
    cli_json(home, "unfreeze", "--freeze", str(frozen["id"]), "--reason", "done")
    before = home.counts()
    again = cli(home, "unfreeze", "--freeze", str(frozen["id"]), "--reason", "again")
    assert again.returncode == 1
    assert f"freeze {frozen['id']} was lifted already" in again.stderr
    assert home.counts() == before
