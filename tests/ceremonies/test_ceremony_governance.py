"""Under `governance`, ceremonies run only with a proposal the quorum approved with device keys,
naming exactly what the command does: retirement and ledger key rotation in-process, a backup
in a `custody` process (it needs the security officer), a restore of the session's backup."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import func, select

from custody.app import create_app
from custody.approvals.approvers import add_approver
from custody.hsm import Backup, DevToken
from custody.store.base import utcnow
from custody.store.models import CeremonyApproval
from tests.ceremonies.conftest import Source
from tests.ceremonies.test_key_retire import backed_up_wallet
from tests.e2e.process import custody_env, run_custody
from tests.e2e.process import ok_json as ok_process_json
from tests.support.cli import CliResult, invoke, ok_json
from tests.support.installation import Installation, InstallationFactory

GOVERNED = """
version: 1
governance: {require_approvals: {count: 2, group: custodians}}
rules:
  - {id: allow-all, match: {type: withdrawal}, action: allow}
"""


@dataclass(frozen=True)
class Custodian:
    """A custodian's device key, signing ceremony statements as docs/ceremonies.md says."""

    name: str
    key: Ed25519PrivateKey

    def sign(self, proposal: dict[str, Any], decision: str = "approve") -> str:
        statement = proposal["statement"] | {"decision": decision, "approver": self.name}
        return base64.b64encode(self.key.sign(bytes(rfc8785.dumps(statement)))).decode()


@pytest.fixture
def home(installations: InstallationFactory) -> Iterator[Installation]:
    inst = installations.make("sqlite")
    inst.apply_policy(GOVERNED)
    try:
        yield inst
    finally:
        installations.discard(inst)


def custodian(home: Installation, group: str = "custodians") -> Custodian:
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    name = f"cus-{secrets.token_hex(3)}"
    with home.runtime.db.write() as session:
        add_approver(session, name=name, groups=[group], device_key_pem=pem, actor="test")
    return Custodian(name, key)


def cli(home: Installation, *args: str) -> CliResult:
    return invoke(list(args), home.env)


def approve(home: Installation, who: Custodian, proposal: dict[str, Any]) -> dict[str, Any]:
    signature = who.sign(proposal)
    return dict(
        ok_json(
            cli(
                home,
                "ceremony",
                "approve",
                str(proposal["id"]),
                "--approver",
                who.name,
                "--signature",
                signature,
                "--json",
            )
        )
    )


def on_token(home: Installation, label: str) -> bool:
    return label in {k.label for k in home.runtime.token().list_keys()}


def test_retirement_needs_the_quorum_of_exactly_this_ceremony(home: Installation) -> None:
    ann, bo, outsider = custodian(home), custodian(home), custodian(home, "treasury")
    wallet, other = backed_up_wallet(home), backed_up_wallet(home)
    retire = ["keys", "retire", wallet.key_label, "--yes"]
    before = home.counts()

    refused = cli(home, *retire)
    assert refused.returncode != 0
    assert "governance of this installation (2 from custodians) must approve" in refused.stderr
    assert "custody ceremony propose retire-key" in refused.stderr
    assert home.counts() == before
    assert on_token(home, wallet.key_label)

    proposal = ok_json(cli(home, "ceremony", "propose", "retire-key", wallet.key_label, "--json"))
    assert proposal["ceremony"] == "retire-key"
    assert proposal["required_approvals"] == [{"group": "custodians", "count": 2}]
    subject = proposal["subject"]
    assert (subject["label"], len(subject["public_key"]), len(subject["last_backup"])) == (
        wallet.key_label,
        130,
        64,
    )
    digest = hashlib.sha256(rfc8785.dumps({"ceremony": "retire-key", **subject})).hexdigest()
    assert proposal["statement"] == {
        "type": "custody.ceremony_approval.v1",
        "proposal": str(proposal["id"]),
        "ceremony": "retire-key",
        "subject_sha256": digest,
    }
    again = ok_json(cli(home, "ceremony", "propose", "retire-key", wallet.key_label, "--json"))
    assert again["id"] == proposal["id"]  # proposing again shows the same proposal

    # The other key's proposal, approved by both: it does not let this key be retired.
    elsewhere = ok_json(cli(home, "ceremony", "propose", "retire-key", other.key_label, "--json"))
    assert approve(home, ann, elsewhere)["quorum"]["met"] is False
    assert approve(home, bo, elsewhere)["quorum"]["met"] is True

    one = approve(home, ann, proposal)
    assert one["quorum"]["received"] == {"custodians": [ann.name]}
    short = cli(home, *retire)
    assert short.returncode != 0
    assert f"ceremony proposal {proposal['id']} has 1 valid approval(s)" in short.stderr

    # Refused decisions record nothing: a forged signature, an outsider, a signature over the
    # other proposal's statement.
    counted = home.counts()
    forged = Custodian(bo.name, Ed25519PrivateKey.generate()).sign(proposal)
    wrong_group = outsider.sign(proposal)
    replayed = bo.sign(elsewhere)
    for name, signature in ((bo.name, forged), (outsider.name, wrong_group), (bo.name, replayed)):
        answer = cli(
            home, "ceremony", "approve", str(proposal["id"]), "--approver", name,
            "--signature", signature,
        )  # fmt: skip
        assert answer.returncode != 0
        assert len(answer.stderr.strip().splitlines()) == 1
    assert home.counts() == counted

    # A row written straight into the database, with a signature that does not verify, counts
    # for nothing.
    with home.runtime.db.write() as session:
        approver_id = session.execute(
            select(CeremonyApproval.approver_id).where(
                CeremonyApproval.proposal_id == elsewhere["id"],
                CeremonyApproval.approver_id != _approver_id(home, ann.name),
            )
        ).scalar_one()
        session.add(
            CeremonyApproval(
                proposal_id=proposal["id"],
                approver_id=approver_id,
                decision="approve",
                statement=b"{}",
                evidence=json.dumps({"signature": bo.sign(elsewhere)}),
                created_at=utcnow(),
            )
        )
    still = cli(home, *retire)
    assert still.returncode != 0
    assert "has 1 valid approval(s)" in still.stderr
    assert on_token(home, wallet.key_label)
    with home.runtime.db.write() as session:
        session.execute(
            CeremonyApproval.__table__.delete().where(
                CeremonyApproval.proposal_id == proposal["id"],
                CeremonyApproval.approver_id == approver_id,
            )
        )

    assert approve(home, bo, proposal)["quorum"]["met"] is True
    done = ok_json(cli(home, *retire, "--json"))
    assert done["destroyed"] is True
    assert not on_token(home, wallet.key_label)
    (entry,) = home.ledger_entries("key.retired")
    assert entry["data"]["proposal"] == proposal["id"]
    assert entry["data"]["approved_by"] == {"custodians": [ann.name, bo.name]}
    listed = {p["id"]: p for p in ok_json(cli(home, "ceremony", "proposals", "--json"))}
    assert listed[proposal["id"]]["state"] == "used"
    assert listed[elsewhere["id"]]["state"] == "pending"
    assert on_token(home, other.key_label)  # its own proposal is still only a proposal


def _approver_id(home: Installation, name: str) -> str:
    from custody.approvals.repository import approver_named

    with home.runtime.db.read() as session:
        found = approver_named(session, name)
        assert found is not None
        return found.id


def test_a_used_or_rejected_proposal_lets_nothing_run(home: Installation) -> None:
    ann, bo = custodian(home), custodian(home)
    reason = ["--reason", "yearly"]
    proposal = ok_json(cli(home, "ceremony", "propose", "rotate-ledger-key", *reason, "--json"))
    approve(home, ann, proposal)
    approve(home, bo, proposal)
    other_reason = cli(home, "ledger", "rotate-key", "--reason", "something else")
    assert other_reason.returncode != 0
    assert "must approve this rotate-ledger-key first" in other_reason.stderr

    rotated = ok_json(cli(home, "ledger", "rotate-key", *reason, "--json"))
    (entry,) = home.ledger_entries("ledger.key_rotated")
    assert entry["index"] == rotated["ledger_index"]
    assert entry["data"]["approved_by"] == {"custodians": [ann.name, bo.name]}
    assert cli(home, "ledger", "rotate-key", *reason).returncode != 0  # used up

    # A rejection ends a proposal: the other approver's signature no longer helps.
    wallet = backed_up_wallet(home)
    retire = ok_json(cli(home, "ceremony", "propose", "retire-key", wallet.key_label, "--json"))
    rejected = cli(
        home, "ceremony", "approve", str(retire["id"]), "--approver", ann.name,
        "--signature", ann.sign(retire, "reject"), "--reject", "--json",
    )  # fmt: skip
    assert ok_json(rejected)["state"] == "rejected"
    late = cli(
        home, "ceremony", "approve", str(retire["id"]), "--approver", bo.name,
        "--signature", bo.sign(retire),
    )  # fmt: skip
    assert late.returncode != 0
    assert "rejected, not pending" in late.stderr
    with home.runtime.db.read() as session:
        assert session.execute(select(func.count()).select_from(CeremonyApproval)).scalar_one() == 3


def test_without_governance_proposals_are_refused(installations: InstallationFactory) -> None:
    inst = installations.make("sqlite")
    try:
        inst.allow_all_policy()
        refused = cli(inst, "ceremony", "propose", "rotate-ledger-key")
        assert refused.returncode != 0
        assert "no governance" in refused.stderr
    finally:
        installations.discard(inst)


@pytest.mark.slow
def test_a_backup_runs_only_once_approved_and_its_entry_names_the_approvers(
    home: Installation, hsm_dev_token: DevToken, tmp_path: Path
) -> None:
    ann, bo = custodian(home), custodian(home)
    home.wallet(backup=Backup.TRUSTED_WRAP)
    folder = tmp_path / "backup"
    args = [str(folder), "--shares", "2", "--threshold", "2", "--custodian", "ann"]
    args += ["--custodian", "bo"]
    env = custody_env(home.env, CUSTODY_HSM_SO_PIN_FILE=str(hsm_dev_token.pin_file))
    before = home.counts()

    refused = run_custody(["ceremony", "backup", *args, "--json"], env)
    assert refused.returncode != 0
    assert "must approve this backup first" in refused.stderr
    assert not folder.exists()
    assert home.counts() == before

    proposal = ok_json(cli(home, "ceremony", "propose", "backup", *args, "--json"))
    assert proposal["subject"] == {
        "directory": str(folder),
        "shares": 2,
        "threshold": 2,
        "custodians": ["ann", "bo"],
    }
    approve(home, ann, proposal)
    approve(home, bo, proposal)
    # Approved for 2 of 2: a backup with another threshold is another ceremony.
    other = run_custody(
        ["ceremony", "backup", str(folder), "--shares", "2", "--threshold", "1", "--json"], env
    )
    assert other.returncode != 0
    assert not folder.exists()

    made = ok_process_json(run_custody(["ceremony", "backup", *args, "--json"], env))
    (entry,) = home.ledger_entries("ceremony.backup")
    assert entry["index"] == made["ledger_index"]
    assert entry["data"]["proposal"] == proposal["id"]
    assert entry["data"]["approved_by"] == {"custodians": [ann.name, bo.name]}
    steps = json.loads(Path(made["transcript"]["path"]).read_text())["steps"]
    assert {"custodians": [ann.name, bo.name]} in [s.get("approved_by") for s in steps]


@pytest.mark.slow
def test_a_restore_runs_only_once_approved(
    source: Source, home: Installation, hsm_dev_token: DevToken
) -> None:
    ann, bo = custodian(home), custodian(home)
    stdin = "".join(f"{share}\n" for share in source.shares[:3])
    restore = ["ceremony", "restore", str(source.backup)]
    before = home.counts()
    refused = invoke(restore, home.env, stdin=stdin)
    assert refused.returncode != 0
    assert "must approve this restore first" in refused.stderr
    assert home.counts() == before
    assert not on_token(home, source.key)

    proposal = ok_json(cli(home, "ceremony", "propose", "restore", str(source.backup), "--json"))
    assert proposal["subject"]["manifest_sha256"] == source.made["manifest_sha256"]
    approve(home, ann, proposal)
    approve(home, bo, proposal)
    try:
        done = ok_json(invoke([*restore, "--json"], home.env, stdin=stdin))
        (entry,) = home.ledger_entries("ceremony.restore")
        assert entry["index"] == done["ledger_index"]
        assert entry["data"]["approved_by"] == {"custodians": [ann.name, bo.name]}
    finally:  # the session token is shared: later restores of this backup need the label free
        if on_token(home, source.key):
            home.runtime.token().destroy_key(source.key)


def test_approvers_phones_post_their_decisions_over_http(home: Installation) -> None:
    ann, bo = custodian(home), custodian(home)
    proposal = ok_json(cli(home, "ceremony", "propose", "rotate-ledger-key", "--json"))
    url = f"/v1/ceremonies/proposals/{proposal['id']}/approvals"

    def post(http: HttpClient, who: Custodian, signature: str) -> httpx.Response:
        body = {"approver": who.name, "decision": "approve", "signature": signature}
        return http.post(url, content=json.dumps(body).encode())

    with HttpClient(create_app(home.runtime, run_worker=False)) as http:
        forged = post(http, ann, Custodian(ann.name, Ed25519PrivateKey.generate()).sign(proposal))
        assert forged.status_code == 401
        assert forged.headers["content-type"] == "application/problem+json"
        first = post(http, ann, ann.sign(proposal))
        assert first.status_code == 200, first.text
        assert first.json() == {
            "proposal": proposal["id"],
            "state": "pending",
            "quorum": {
                "required": [{"group": "custodians", "count": 2}],
                "received": {"custodians": [ann.name]},
                "met": False,
            },
        }
        assert post(http, ann, ann.sign(proposal)).status_code == 409  # counts once
        body = {"approver": bo.name, "decision": "approve", "signature": bo.sign(proposal)}
        missing = http.post(
            "/v1/ceremonies/proposals/999/approvals", content=json.dumps(body).encode()
        )
        assert missing.status_code == 404
        assert post(http, bo, bo.sign(proposal)).json()["quorum"]["met"] is True
    rotated = ok_json(cli(home, "ledger", "rotate-key", "--json"))
    (entry,) = home.ledger_entries("ledger.key_rotated")
    assert entry["index"] == rotated["ledger_index"]
