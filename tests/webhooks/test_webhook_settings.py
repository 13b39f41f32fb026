"""Webhook settings: URL checks, ledger entries, the CLI, and the published key."""

from __future__ import annotations

import secrets

import pytest

from custody.errors import NotFound
from custody.webhooks import service
from custody.webhooks.deliverer import backoff
from custody.webhooks.signing import KEY_LABEL
from tests.support.api import Api
from tests.support.cli import invoke, ok_json
from tests.support.installation import Installation


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "example.com/hook",
        "javascript:alert(1)",
        "http:///nohost",
        "https://user:secret@example.com/hook",
        "https://example.com/a b",
        "https://example.com:99999/",
        "https://example.com/" + "x" * 500,
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(service.InvalidWebhookUrl):
        service.validate_url(url)


def test_good_urls_pass() -> None:
    for url in ("https://hooks.example.com/custody", "http://127.0.0.1:9000/x?y=1"):
        assert service.validate_url(url) == url


def test_backoff_doubles_up_to_five_minutes() -> None:
    assert [backoff(n).total_seconds() for n in range(1, 12)] == [
        1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300,
    ]  # fmt: skip


def test_cli_sets_and_clears_urls_and_ledgers_each_change(
    api: Api, installation: Installation
) -> None:
    env = installation.env
    name = api.client.name
    url = "https://hooks.example.com/custody"
    data = ok_json(invoke(["clients", "set-webhook", name, url, "--json"], env))
    assert data == {"id": api.client.id, "name": name, "webhook_url": url}
    ok_json(invoke(["clients", "set-webhook", name, "--clear", "--json"], env))
    entries = [
        e["data"]
        for e in installation.ledger_entries("client.webhook_set")
        if e["data"]["client"] == api.client.id
    ]
    assert entries == [
        {"client": api.client.id, "name": name, "url": url},
        {"client": api.client.id, "name": name, "url": None},
    ]

    group = f"wh-{secrets.token_hex(3)}"
    ok_json(invoke(["webhooks", "group-url", group, url, "--json"], env))
    ok_json(invoke(["webhooks", "group-url", group, "--clear", "--json"], env))
    groups = [
        e["data"]
        for e in installation.ledger_entries("webhooks.group_url_set")
        if e["data"]["group"] == group
    ]
    assert groups == [{"group": group, "url": url}, {"group": group, "url": None}]


@pytest.mark.parametrize(
    "args",
    [
        ["clients", "set-webhook", "CLIENT", "ftp://x.example/"],
        ["clients", "set-webhook", "CLIENT"],
        ["clients", "set-webhook", "CLIENT", "https://x.example/", "--clear"],
        ["clients", "set-webhook", "no-such-client", "https://x.example/"],
        ["webhooks", "group-url", "Bad Group", "https://x.example/"],
        ["webhooks", "list", "--status", "lost"],
    ],
)
def test_cli_refuses_bad_input_with_one_line_and_changes_nothing(
    api: Api, installation: Installation, args: list[str]
) -> None:
    before = installation.counts()["ledger"]
    args = [api.client.name if a == "CLIENT" else a for a in args]
    result = invoke(args, installation.env)
    assert result.returncode != 0
    assert result.stderr.strip().startswith("error:")
    assert len(result.stderr.strip().splitlines()) == 1
    assert installation.counts()["ledger"] == before


def test_unknown_client_is_not_found(installation: Installation) -> None:
    with pytest.raises(NotFound), installation.runtime.db.write() as session:
        service.set_client_webhook(session, name="nobody-here", url=None, actor="test")


def test_public_key_is_the_same_from_api_cli_and_hsm(api: Api, installation: Installation) -> None:
    answer = api.call("GET", "/v1/webhooks/public-key")
    assert answer.status_code == 200, answer.text
    published = answer.json()
    cli = ok_json(invoke(["webhooks", "public-key", "--json"], installation.env))
    assert cli == published
    held = installation.runtime.token().get_key(KEY_LABEL).public_key
    assert published["public_key"] == held.hex()
    assert published["algorithm"] == "ed25519"
    assert len(published["key_id"]) == 16
    assert published["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert api.call("GET", "/v1/webhooks/public-key", token="nope").status_code == 401


def test_an_installation_without_the_key_gets_it_on_first_use(
    installation: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    from custody.webhooks import signing

    label = f"webhooks-{installation.backend}-{secrets.token_hex(4)}"
    monkeypatch.setattr(signing, "KEY_LABEL", label)
    first = signing.BodySigner(installation.runtime).key
    again = signing.public_key(installation.runtime)
    assert first == again
    assert installation.runtime.token().get_key(label).public_key == first.public_key
    recorded = [
        e for e in installation.ledger_entries("key.generated") if e["data"]["label"] == label
    ]
    assert len(recorded) == 1
    assert recorded[0]["data"]["algorithm"] == "ed25519"
    headers = signing.BodySigner(installation.runtime).headers(b"{}", 1_700_000_000)
    assert headers["Custody-Key-Id"] == first.key_id
