"""Circuit breakers freeze by themselves, with a ledger entry naming the breaker and its evidence.

Policy breakers (`denied_requests`, `velocity`) trip at intake; the built-in ones when the signer's
software check refuses a signature and when the checkpointer finds a forked ledger.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import update

from custody.app import create_app
from custody.policy import load_policy_text
from custody.store.models import Wallet
from tests.freezes.conftest import active_freezes, cli, cli_json, statuses, submit, worker
from tests.ledger.conftest import attacker, checkpoint, entry_bytes, grow, rebuild_nodes
from tests.ledger.conftest import rewrite_entry as rewrite
from tests.support.api import Api
from tests.support.installation import Installation
from tests.support.lifecycle import assert_histories_hold

ETH = 10**18
LISTED = "0xe3139eABD9dCaDCDC9e6f2848Ef4AfD85Dc0c1B7"
ELSEWHERE = "0x000000000000000000000000000000000000dEaD"
DENIALS = """
version: 1
breakers:
  - id: probing
    description: a client asking again and again for what policy refuses
    denied_requests: {{max_count: 2, window: 10m}}
rules:
  - {{id: no-dead, match: {{type: withdrawal, destination_in: dead}}, action: deny}}
  - {{id: allow-all, match: {{type: withdrawal}}, action: allow}}
allowlists:
  dead: [{{chain: ethereum, address: "{dead}", label: dead}}]
"""
VELOCITY = """
version: 1
breakers:
  - id: hot-spike
    velocity: {{wallets: ["{wallet}"], asset: ETH, window: 1h, max_amount: "{max}"}}
rules:
  - {{id: allow-all, match: {{type: withdrawal}}, action: allow}}
"""


def test_denied_requests_trip_after_more_than_max_count(
    http: HttpClient, home: Installation
) -> None:
    home.apply_policy(DENIALS.format(dead=ELSEWHERE))
    wallet = home.wallet()
    desk, other = home.client(), home.client()
    api, bystander = Api(http.request, desk), Api(http.request, other)
    waiting = submit(bystander, wallet.name, nonce=0)["id"]
    denied = [submit(api, wallet.name, nonce=n, destination=ELSEWHERE) for n in (1, 2)]
    assert [d["status"] for d in denied] == ["rejected", "rejected"]
    # Denials of other clients and approvals count for nothing towards this client's.
    submit(bystander, wallet.name, nonce=3, destination=ELSEWHERE)
    assert active_freezes(home) == []

    third = submit(api, wallet.name, nonce=4, destination=ELSEWHERE)
    assert third["status"] == "rejected"
    (frozen,) = active_freezes(home)
    assert frozen.wallet_id is None
    assert frozen.source == "breaker:probing"
    (entry,) = home.ledger_entries("signing.frozen")
    assert entry["actor"] == "breaker:probing"
    assert entry["data"]["reason"] == (
        f"breaker probing: more than 2 requests of client {desk.name} denied by policy within 10m"
    )
    evidence = entry["data"]["evidence"]
    assert evidence["breaker"] == "probing"
    assert evidence["client"] == desk.id
    assert evidence["denied"] == 3
    assert evidence["last_request"] == third["id"]
    assert worker(home).drain() == 0
    assert statuses(home, [waiting]) == ["approved"]

    # Tripped once: more denials while frozen add no freeze.
    submit(api, wallet.name, nonce=5, destination=ELSEWHERE)
    assert len(home.ledger_entries("signing.frozen")) == 1
    # Lifted: the breaker counts from the lift, so the denials people looked at do not count.
    cli_json(home, "unfreeze", "--reason", "desk-1 was misconfigured, fixed")
    submit(api, wallet.name, nonce=6, destination=ELSEWHERE)
    assert active_freezes(home) == []
    assert worker(home).drain() == 1


def test_velocity_freezes_the_wallet_that_spiked(http: HttpClient, home: Installation) -> None:
    hot, cold = home.wallet(), home.wallet()
    home.apply_policy(VELOCITY.format(wallet=hot.name, max=5 * ETH))
    api = Api(http.request, home.client())
    first = submit(api, hot.name, nonce=0, amount=str(3 * ETH))
    elsewhere = submit(api, cold.name, nonce=0, amount=str(30 * ETH))  # not watched
    assert active_freezes(home) == []
    second = submit(api, hot.name, nonce=1, amount=str(3 * ETH))
    assert second["status"] == "approved"  # decided as usual, and then held by the freeze
    (frozen,) = active_freezes(home)
    assert frozen.source == "breaker:hot-spike"
    (entry,) = home.ledger_entries("signing.frozen")
    assert entry["data"]["scope"] == "wallet"
    assert entry["data"]["wallet"] == hot.name
    assert entry["data"]["evidence"] | {"since": None} == {
        "breaker": "hot-spike",
        "wallet": hot.name,
        "asset": "ETH",
        "total": str(6 * ETH),
        "max_amount": str(5 * ETH),
        "requests": 2,
        "window": "1h",
        "since": None,
        "last_request": second["id"],
    }
    ids = [first["id"], second["id"], elsewhere["id"]]
    assert worker(home).drain() == 1
    assert statuses(home, ids) == ["approved", "approved", "signed"]
    assert (
        api.get(second["id"])
        .json()["waiting"]["freezes"][0]["reason"]
        .startswith("breaker hot-spike: requests for wallet")
    )


def test_a_signature_that_fails_its_software_check_freezes_all_signing(
    own: Installation,
) -> None:
    """A wallet's record names another address than its key's (a mistaken change made through
    custody, so sealed; an insider's edit outside it is the configuration seal's to catch): the
    HSM signs with the real key, the software check refuses the signature, the request fails and
    nothing more is signed."""
    victim, other = own.wallet(), own.wallet()
    with HttpClient(create_app(own.runtime, run_worker=False)) as http:
        api = Api(http.request, own.client())
        bad = submit(api, victim.name)["id"]
        held = submit(api, other.name)["id"]
    with own.runtime.db.write() as session:
        session.execute(update(Wallet).where(Wallet.name == victim.name).values(address=ELSEWHERE))
    signer = worker(own)
    assert signer.drain() == 0
    # Both were claimed in one batch and signed by the HSM: the failed check froze signing
    # before anything was recorded, so the other signature was withheld, not released.
    assert statuses(own, [bad, held]) == ["failed", "signing"]
    (frozen,) = active_freezes(own)
    assert (frozen.wallet_id, frozen.source) == (None, "breaker:signature-check")
    (entry,) = own.ledger_entries("signing.frozen")
    assert entry["actor"] == f"worker:{signer.worker_id}"
    assert entry["data"]["evidence"]["request"] == bad
    assert entry["data"]["evidence"]["key"] == victim.key_label
    assert (
        "expected 0x000000000000000000000000000000000000dEaD"
        in (entry["data"]["evidence"]["detail"])
    )
    assert [e["data"]["request"] for e in own.ledger_entries("signing.withheld")] == [held]
    assert own.ledger_entries("request.signed") == []
    assert_histories_hold(own, [bad, held])


def test_a_forked_ledger_freezes_all_signing(own: Installation) -> None:
    wallet = own.wallet()
    with HttpClient(create_app(own.runtime, run_worker=False)) as http:
        waiting = submit(Api(http.request, own.client()), wallet.name)["id"]
    grow(own, 5)
    checkpoint(own)
    attacker(own)
    victim = 3
    rewrite(own, victim, entry_bytes(own, victim).replace(b'"actor":"', b'"actor":"x-', 1))
    rebuild_nodes(own)
    grow(own, 2)

    refused = cli(own, "ledger", "checkpoint")
    assert refused.returncode == 1
    assert "fork" in refused.stderr
    (frozen,) = active_freezes(own)
    assert frozen.source == "breaker:ledger-consistency"
    evidence = own.ledger_entries("signing.frozen")[0]["data"]["evidence"]
    assert evidence["breaker"] == "ledger-consistency"
    assert "fork" in evidence["detail"]
    assert worker(own).drain() == 0
    assert statuses(own, [waiting]) == ["approved"]
    # The checkpointer keeps refusing, but the same fork does not freeze twice.
    assert cli(own, "ledger", "checkpoint").returncode == 1
    assert len(own.ledger_entries("signing.frozen")) == 1


BAD_BREAKERS = [
    ("denied_requests: {max_count: 0, window: 10m}", "breakers[0].denied_requests.max_count"),
    ("denied_requests: {max_count: 3, window: 10s}", "window must be between 1m and 31d"),
    ("denied_requests: {max_count: 3}", "breakers[0].denied_requests.window: missing"),
    ("velocity: {asset: ETH, window: 1h, max_amount: 1.5}", "max_amount"),
    ("velocity: {window: 1h, max_amount: '5'}", "breakers[0].velocity.asset: missing"),
    ("velocity: {asset: ETH, window: 1h, max_amount: '5', wallets: []}", "must not be empty"),
    ("denied_requests: {max_count: 3, window: 1h, per: client}", "unknown key"),
    ("frozen: true", "unknown key"),
    ("description: nothing", "exactly one of denied_requests or velocity"),
]


@pytest.mark.parametrize(("body", "words"), BAD_BREAKERS)
def test_bad_breakers_are_refused_by_file_line_and_key(
    home: Installation, tmp_path: Path, body: str, words: str
) -> None:
    policy = tmp_path / "bad.yaml"
    policy.write_text(
        "version: 1\n"
        "rules:\n"
        "  - {id: allow-all, match: {type: withdrawal}, action: allow}\n"
        "breakers:\n"
        f"  - id: b\n    {body}\n"
    )
    validated = cli(home, "policy", "validate", str(policy))
    assert validated.returncode == 1
    assert f"{policy}:5" in validated.stderr or f"{policy}:6" in validated.stderr
    assert words in validated.stderr
    before = home.counts()
    assert cli(home, "policy", "apply", str(policy)).returncode == 1
    assert home.counts() == before


@pytest.mark.parametrize(
    ("breakers", "words"),
    [
        (
            "  - {id: twice, denied_requests: {max_count: 1, window: 1h}}\n"
            "  - {id: twice, denied_requests: {max_count: 2, window: 1h}}\n",
            "duplicate id twice (breakers[0] and breakers[1])",
        ),
        (
            "  - {id: signature-check, denied_requests: {max_count: 1, window: 1h}}\n",
            "signature-check is a built-in breaker's",
        ),
        ("  []\n", "must not be empty"),
    ],
)
def test_breaker_ids_are_unique_and_not_built_in(
    home: Installation, tmp_path: Path, breakers: str, words: str
) -> None:
    policy = tmp_path / "ids.yaml"
    policy.write_text(
        "version: 1\nrules:\n  - {id: allow-all, match: {type: withdrawal}, action: allow}\n"
        f"breakers:\n{breakers}"
    )
    result = cli(home, "policy", "validate", str(policy))
    assert result.returncode == 1
    assert words in result.stderr


def test_the_documented_breakers_are_valid() -> None:
    """docs/policies.md's example cannot drift from the language."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "policies.md").read_text()
    (block,) = [
        b for b in re.findall(r"```yaml\n(.*?)```", doc, flags=re.DOTALL) if "breakers:" in b
    ]
    loaded = load_policy_text(
        block + "version: 1\nrules:\n  - {id: a, match: {type: withdrawal}, action: allow}\n",
        "docs",
    )
    assert [b.id for b in loaded.policy.breakers or ()] == ["probing-client", "hot-eth-spike"]
