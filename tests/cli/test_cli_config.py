"""`custody.toml` never holds a PIN (invariant 9): a PIN-like key is refused when the settings
load, with one line naming the file and where PINs go instead, and the PIN itself never shown.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from custody.hsm import DevToken, read_pin_file
from custody.settings import load_settings
from custody.settings.config import SettingsInvalid
from tests.support.cli import invoke, ok_json
from tests.support.installation import installation_env

PIN = "pin-in-a-file-9f3a"

PIN_LIKE = {
    "hsm_pin": f'hsm_pin = "{PIN}"\n',
    "HSM_PIN": f'HSM_PIN = "{PIN}"\n',
    "hsm_so_pin": f'hsm_so_pin = "{PIN}"\n',
    "hsm.pin": f'[hsm]\npin = "{PIN}"\n',
    "database_password": f'database_password = "{PIN}"\n',
    "tokens.vault.pin": f'[tokens.vault]\npin_env = "VAULT_PIN"\npin = "{PIN}"\n',
}


def _home(tmp_path: Path, toml: str) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "custody.toml").write_text('environment = "development"\n' + toml)
    return home


@pytest.mark.parametrize("key", list(PIN_LIKE))
def test_a_pin_in_the_config_file_is_refused_at_load(tmp_path: Path, key: str) -> None:
    home = _home(tmp_path, PIN_LIKE[key])
    with pytest.raises(SettingsInvalid) as caught:
        load_settings(home)
    message = caught.value.message
    assert str(home / "custody.toml") in message
    assert f"`{key}`" in message
    assert "CUSTODY_HSM_PIN or CUSTODY_HSM_PIN_FILE" in message
    assert PIN not in message
    assert "\n" not in message


def test_the_cli_refuses_it_in_one_line(tmp_path: Path, hsm_dev_token: DevToken) -> None:
    """Even with a right PIN in the environment: the file must not hold one at all."""
    home = _home(tmp_path, PIN_LIKE["hsm_pin"])
    result = invoke(["keys", "list"], installation_env(home, hsm_dev_token, None))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    assert "custody.toml" in lines[0]
    assert "CUSTODY_HSM_PIN" in lines[0]
    assert PIN not in result.stdout + result.stderr
    assert not (home / "custody.db").exists()


def test_the_pin_file_setting_names_a_file_and_is_accepted(
    tmp_path: Path, hsm_dev_token: DevToken
) -> None:
    home = _home(tmp_path, f'hsm_pin_file = "{hsm_dev_token.pin_file}"\n')
    env = installation_env(home, hsm_dev_token, None)
    del env["CUSTODY_HSM_PIN_FILE"]
    assert load_settings(home).hsm_pin_file == hsm_dev_token.pin_file
    ok_json(invoke(["init", "--json"], env))
    pin = read_pin_file(hsm_dev_token.pin_file)
    assert pin not in (home / "custody.toml").read_text()


def test_extra_tokens_load_from_the_config_file(tmp_path: Path) -> None:
    home = _home(
        tmp_path,
        'hsm_token = "main"\n[tokens.vault]\nlabel = "VAULT-01"\npin_env = "VAULT_PIN"\n'
        '[tokens."cold.2"]\npin_file = "secrets/cold.pin"\n',
    )
    settings = load_settings(home)
    assert settings.extra_token_labels == {"vault": "VAULT-01", "cold.2": "cold.2"}
    assert settings.tokens["vault"].pin_env == "VAULT_PIN"
    assert settings.tokens["cold.2"].pin_file == Path("secrets/cold.pin")


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ('[tokens.vault]\nlabel = "v"\n', "exactly one of pin_file and pin_env"),
        (
            '[tokens.vault]\npin_env = "V"\npin_file = "v.pin"\n',
            "exactly one of pin_file and pin_env",
        ),
        ('[tokens.vault]\nlabel = "custody-dev"\npin_env = "V"\n', "several tokens are labelled"),
        ('[tokens.vault]\npin_env = "not a name"\n', "pin_env"),
        ('[tokens.vault]\npin_env = "s3cretpin"\n', "pin_env"),  # a PIN, not a variable
    ],
)
def test_a_bad_token_table_is_refused_in_one_line(tmp_path: Path, table: str, says: str) -> None:
    with pytest.raises(SettingsInvalid) as caught:
        load_settings(_home(tmp_path, table))
    assert says in caught.value.message
    assert "\n" not in caught.value.message
    assert "s3cretpin" not in caught.value.message
