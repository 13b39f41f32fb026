"""`custody hsm tokens` and `custody hsm add-token` on an installation that names its HSM (the
session token, as production names a real one): the tokens are listed with where their PINs come
from and never a PIN; add-token, which makes development tokens only, refuses in one line."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from custody.hsm import DevToken, read_pin_file
from tests.support.cli import invoke, ok_json
from tests.support.installation import Installation, InstallationFactory, allow_all_installation


@pytest.fixture
def two_tokens(
    installations: InstallationFactory, second_token: DevToken
) -> Iterator[Installation]:
    with allow_all_installation(installations) as inst:
        inst.add_tokens({"b": second_token})
        yield inst


def test_hsm_tokens_lists_each_token_with_its_pin_source_and_never_a_pin(
    two_tokens: Installation, second_token: DevToken, hsm_dev_token: DevToken
) -> None:
    listed = ok_json(invoke(["hsm", "tokens", "--json"], two_tokens.env))
    assert [(t["token"], t["label"], t["main"]) for t in listed] == [
        (hsm_dev_token.label, hsm_dev_token.label, True),
        ("b", second_token.label, False),
    ]
    assert listed[1]["pin_source"] == str(second_token.pin_file)
    assert {t["health"] for t in listed} == {"no signer report"}
    human = invoke(["hsm", "tokens"], two_tokens.env).stdout
    for token in (hsm_dev_token, second_token):
        assert read_pin_file(token.pin_file) not in human


def test_add_token_refuses_an_installation_that_names_its_hsm(two_tokens: Installation) -> None:
    before = (two_tokens.home / "custody.toml").exists()
    result = invoke(["hsm", "add-token", "vault"], two_tokens.env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "development tokens only" in lines[0]
    assert '[tokens."vault"]' in lines[0]
    assert (two_tokens.home / "custody.toml").exists() == before
