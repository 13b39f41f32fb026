"""Safe multisig wallets on a real anvil: a 2-of-3 Safe whose owner keys are on three tokens
(the main token and two more of the session's SoftHSM configuration), deployed by custody,
funded, and emptied by withdrawals that reach `confirmed`.

What custody made is checked by code that did not make it: the Safe contract itself (its
`getTransactionHash`, `getOwners`, `nonce`, and execTransaction's signature checks), balances
on the node, and eth-keys recovery of each owner signature.

A failing token is one whose PIN is refused (as in tests/bitcoin/test_bitcoin_tokens.py: a
token that goes away needs a library reset, which would end the sessions other tests hold).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import decode, encode
from eth_account import Account
from eth_keys.datatypes import PublicKey, Signature
from eth_utils.crypto import keccak
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import select

from custody.app import create_app
from custody.broadcast.runner import Broadcaster
from custody.hsm import DevToken
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.signing.worker import SignerWorker
from custody.store.models import Key, Request, SafeWallet, Wallet
from tests.bitcoin.bitcoin_support import new_key
from tests.broadcast.conftest import connect_chain
from tests.support.anvil import DEV_ACCOUNT, Anvil
from tests.support.api import Api
from tests.support.cli import invoke, ok_json
from tests.support.installation import Installation, InstallationFactory, WalletInfo

ETH = 10**18
POLICY = """
version: 1
rules:
  - id: too-much
    action: deny
    match: {type: withdrawal, assets: [ETH], amount_gt: '5000000000000000000'}
  - {id: allow-all, match: {type: withdrawal}, action: allow}
  - {id: calls, match: {type: contract_call}, action: allow}
"""


@dataclass
class SafeWorld:
    inst: Installation
    anvil: Anvil
    chain: str
    executor: WalletInfo
    owners: list[str]
    """Owner key labels: on the main token, on B, on C."""
    safe: dict[str, Any]
    """`wallets create --json` of the Safe."""
    tokens: dict[str, DevToken]

    @property
    def address(self) -> str:
        return str(self.safe["address"])

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        with HttpClient(create_app(self.inst.runtime, run_worker=False)) as http:
            response = Api(http.request, self.inst.client()).create(body)
        assert response.status_code in (200, 201), response.text
        return dict(response.json())

    def request(self, request_id: str) -> Request:
        with self.inst.runtime.db.read() as session:
            request = session.get(Request, request_id)
            assert request is not None
            session.expunge(request)
            return request

    def settle(self, ids: list[str], until: str = "confirmed", rounds: int = 60) -> None:
        signer = SignerWorker(self.inst.runtime, worker_id="safe-signer")
        broadcaster = Broadcaster(self.inst.runtime)
        try:
            for _ in range(rounds):
                signer.drain()
                broadcaster.run_once()
                requests = [self.request(i) for i in ids]
                if all(r.status == until for r in requests):
                    return
            raise AssertionError({r.id: (r.status, r.failure_reason) for r in requests})
        finally:
            broadcaster.close()

    def remove_tokens(self, names: list[str]) -> None:
        """These tokens leave the installation's configuration: their keys are nowhere."""
        self.inst.add_tokens({n: t for n, t in self.tokens.items() if n not in names})

    def refuse_pins(self, names: list[str], tmp_path: Path) -> None:
        """These tokens' PINs are refused from now on: their keys cannot sign."""
        wrong = tmp_path / "wrong.pin"
        wrong.write_text("not-the-pin\n")
        wrong.chmod(0o600)
        self.inst.add_tokens(
            {
                name: DevToken(**{**token.__dict__, "pin_file": wrong}) if name in names else token
                for name, token in self.tokens.items()
            }
        )


def withdrawal(wallet: str, amount: int, destination: str) -> dict[str, Any]:
    return {
        "type": "withdrawal",
        "wallet": wallet,
        "asset": "ETH",
        "amount": str(amount),
        "destination": destination,
    }


def fresh_address() -> str:
    return str(Account.create().address)


def view(anvil: Anvil, contract: str, signature: str, types: list[str], args: list[Any]) -> bytes:
    data = keccak(text=signature)[:4] + encode(types, args)
    return bytes.fromhex(
        anvil.rpc("eth_call", {"to": contract, "data": "0x" + data.hex()}, "latest")[2:]
    )


def safe_nonce(anvil: Anvil, safe: str) -> int:
    (nonce,) = decode(["uint256"], view(anvil, safe, "nonce()", [], []))
    return int(nonce)


@pytest.fixture
def world(
    installations: InstallationFactory,
    anvil: Anvil,
    second_token: DevToken,
    third_token: DevToken,
) -> Iterator[SafeWorld]:
    inst = installations.make("sqlite")
    try:
        tokens = {"b": second_token, "c": third_token}
        inst.add_tokens(tokens)
        inst.apply_policy(POLICY)
        chain = f"anvil-safe-{secrets.token_hex(3)}"
        connect_chain(inst, anvil, chain)
        executor = inst.wallet(chain=chain)
        anvil.fund(executor.address, 10 * ETH)
        owners = [
            new_key(inst),
            new_key(inst, second_token.label),
            new_key(inst, third_token.label),
        ]
        created = ok_json(
            invoke(
                [
                    "wallets",
                    "create",
                    f"treasury-{secrets.token_hex(3)}",
                    "--chain",
                    chain,
                    "--safe",
                    "--owners",
                    ",".join(owners),
                    "--threshold",
                    "2",
                    "--executor",
                    executor.name,
                    "--json",
                ],
                inst.env,
            )
        )
        yield SafeWorld(inst, anvil, chain, executor, owners, created, tokens)
    finally:
        installations.discard(inst)


def deploy(world: SafeWorld) -> dict[str, Any]:
    return dict(
        ok_json(invoke(["wallets", "deploy", world.safe["name"], "--json"], world.inst.env))
    )


def owner_address(world: SafeWorld, label: str) -> str:
    """From the key's public key, by eth-keys (not custody's derivation)."""
    with world.inst.runtime.db.read() as session:
        key = session.execute(select(Key).where(Key.label == label)).scalar_one()
        public = bytes.fromhex(key.public_key)
    return str(PublicKey(public[-64:]).to_checksum_address())


def test_a_two_of_three_safe_across_three_tokens_is_deployed_funded_and_emptied(
    world: SafeWorld,
) -> None:
    anvil, address = world.anvil, world.address
    # the address is known before anything is deployed, and funds may arrive there already
    assert anvil.rpc("eth_getCode", address, "latest") == "0x"
    assert world.safe["owner_tokens"] == ["custody-test", "custody-test-b", "custody-test-c"]
    anvil.fund(address, 3 * ETH)

    deployed = deploy(world)
    assert deployed["address"] == address
    assert anvil.rpc("eth_getCode", address, "latest") != "0x"
    (owners,) = decode(["address[]"], view(anvil, address, "getOwners()", [], []))
    expected = {owner_address(world, label).lower() for label in world.owners}
    assert {o.lower() for o in owners} == expected
    (threshold,) = decode(["uint256"], view(anvil, address, "getThreshold()", [], []))
    assert threshold == 2
    kinds = [e["kind"] for e in world.inst.ledger_entries("wallet.deployed")]
    assert kinds == ["wallet.deployed"]
    # each deploy transaction was ledgered (signed, before it was sent), with its nonce
    signed = world.inst.ledger_entries("wallet.deploy_signed")
    assert [e["data"]["tx_hash"] for e in signed][-1] == deployed["transactions"][-1]
    assert signed[-1]["data"]["executor"] == world.executor.name

    destination = fresh_address()
    created = world.submit(withdrawal(world.safe["name"], ETH, destination))
    assert created["status"] == "approved", created
    payload = created["payload"]["transaction"]
    assert payload["type"] == "evm.safe_tx"
    assert payload["nonce"] == "0"
    # approvers see, and custody signs, the safeTxHash the contract itself computes
    zero = "0x" + "00" * 20
    (on_chain,) = decode(
        ["bytes32"],
        view(
            anvil,
            address,
            "getTransactionHash(address,uint256,bytes,uint8,uint256,uint256,uint256,address,address,uint256)",
            [
                "address",
                "uint256",
                "bytes",
                "uint8",
                "uint256",
                "uint256",
                "uint256",
                "address",
                "address",
                "uint256",
            ],
            [destination, ETH, b"", 0, 0, 0, 0, zero, zero, 0],
        ),
    )
    assert created["payload"]["digest"] == "0x" + on_chain.hex()

    world.settle([created["id"]])
    assert anvil.balance(destination) == ETH
    assert anvil.balance(address) == 2 * ETH
    assert safe_nonce(anvil, address) == 1
    # two signatures, by two distinct owners, ascending by address, over the safeTxHash
    signers = signed_by(world, created["id"], created["payload"]["digest"])
    assert len(signers) == 2
    assert set(signers) <= expected
    assert signers == sorted(signers)


def signed_by(world: SafeWorld, request_id: str, digest_hex: str) -> list[str]:
    """The owners (lower case) whose signatures the request's `request.signed` entry carries,
    in the order it packs them; recovered with eth-keys."""
    (signed,) = [
        e for e in world.inst.ledger_entries("request.signed") if e["data"]["request"] == request_id
    ]
    digest = bytes.fromhex(digest_hex[2:])
    packed = bytes.fromhex(signed["data"]["signatures"][2:])
    owners = []
    for i in range(len(packed) // 65):
        part = packed[i * 65 : (i + 1) * 65]
        signature = Signature(
            vrs=(
                part[64] - 27,
                int.from_bytes(part[:32], "big"),
                int.from_bytes(part[32:64], "big"),
            )
        )
        owners.append(
            signature.recover_public_key_from_msg_hash(digest).to_checksum_address().lower()
        )
    return owners


def test_with_one_owner_token_removed_the_safe_still_signs(world: SafeWorld) -> None:
    deploy(world)
    world.anvil.fund(world.address, 2 * ETH)
    destination = fresh_address()
    created = world.submit(withdrawal(world.safe["name"], ETH, destination))
    world.remove_tokens(["c"])
    world.settle([created["id"]])
    assert world.anvil.balance(destination) == ETH
    expected = {owner_address(world, world.owners[i]).lower() for i in (0, 1)}
    assert set(signed_by(world, created["id"], created["payload"]["digest"])) == expected


def test_with_two_owner_tokens_removed_the_request_fails_clearly_and_nothing_is_sent(
    world: SafeWorld,
) -> None:
    deploy(world)
    world.anvil.fund(world.address, 2 * ETH)
    executor_nonce = world.anvil.nonce(world.executor.address)
    destination = fresh_address()
    created = world.submit(withdrawal(world.safe["name"], ETH, destination))
    world.remove_tokens(["b", "c"])
    world.settle([created["id"]], until="failed")
    request = world.request(created["id"])
    assert request.result_raw is None
    assert request.signed_at is None
    reason = request.failure_reason or ""
    assert "only 1 of the 2 owner signatures the Safe needs can be made" in reason, reason
    assert world.owners[1] in reason
    assert world.owners[2] in reason
    assert world.anvil.nonce(world.executor.address) == executor_nonce
    assert world.anvil.balance(destination) == 0
    assert safe_nonce(world.anvil, world.address) == 0
    # its nonces are free again: the next request takes them
    world.remove_tokens([])
    again = world.submit(withdrawal(world.safe["name"], ETH, destination))
    assert again["payload"]["transaction"]["nonce"] == "0"
    assert int(again["payload"]["transaction"]["executor"]["nonce"]) == executor_nonce


def test_with_one_owner_token_failing_the_safe_still_signs(
    world: SafeWorld, tmp_path: Path
) -> None:
    deploy(world)
    world.anvil.fund(world.address, 2 * ETH)
    destination = fresh_address()
    created = world.submit(withdrawal(world.safe["name"], ETH, destination))
    world.refuse_pins(["b"], tmp_path)
    world.settle([created["id"]])
    assert world.anvil.balance(destination) == ETH
    signers = set(signed_by(world, created["id"], created["payload"]["digest"]))
    # the main token's and C's owners signed; B's could not
    assert signers == {owner_address(world, world.owners[i]).lower() for i in (0, 2)}


def test_with_two_owner_tokens_failing_nothing_is_signed_or_sent(
    world: SafeWorld, tmp_path: Path
) -> None:
    deploy(world)
    world.anvil.fund(world.address, 2 * ETH)
    executor_nonce = world.anvil.nonce(world.executor.address)
    destination = fresh_address()
    created = world.submit(withdrawal(world.safe["name"], ETH, destination))
    world.refuse_pins(["b", "c"], tmp_path)
    signer = SignerWorker(world.inst.runtime, worker_id="safe-signer")
    assert signer.drain() == 0
    broadcaster = Broadcaster(world.inst.runtime)
    try:
        broadcaster.run_once()
    finally:
        broadcaster.close()
    request = world.request(created["id"])
    # it waits, approved, for the tokens; it says why; nothing reached the chain
    assert request.status == "approved"
    assert request.result_raw is None
    back = [
        e
        for e in world.inst.ledger_entries("request.approved")
        if e["data"].get("request") == created["id"]
    ]
    assert back, "the signer's attempt must be recorded with its reason"
    assert "1 of the 2 owner signatures" in back[-1]["data"]["reason"]
    assert world.anvil.nonce(world.executor.address) == executor_nonce
    assert world.anvil.balance(destination) == 0
    assert safe_nonce(world.anvil, world.address) == 0


def test_delegatecall_and_calls_to_the_safe_itself_are_denied_unless_a_rule_allows_them(
    world: SafeWorld,
) -> None:
    deploy(world)
    name = world.safe["name"]
    target = fresh_address()
    data = "0x" + (keccak(text="ping()")[:4]).hex()
    delegate = {
        "type": "contract_call",
        "wallet": name,
        "to": target,
        "data": data,
        "value": "0",
        "operation": 1,
        "evm": {"gas": 100_000},
    }
    denied = world.submit(delegate)
    assert denied["status"] == "rejected", denied
    assert "delegatecall" in denied["policy"]["reason"]
    add_owner = keccak(text="addOwnerWithThreshold(address,uint256)")[:4] + encode(
        ["address", "uint256"], [target, 1]
    )
    self_call = {
        "type": "contract_call",
        "wallet": name,
        "to": world.address,
        "data": "0x" + add_owner.hex(),
        "value": "0",
        "evm": {"gas": 100_000},
    }
    denied = world.submit(self_call)
    assert denied["status"] == "rejected", denied
    assert "self_call" in denied["policy"]["reason"]
    # a rule that names the flag permits it: the flag is what denied it
    world.inst.apply_policy(
        POLICY + "  - id: admin\n"
        "    match: {type: contract_call, allow_self_call: true, allow_unknown_method: true}\n"
        "    action: allow\n"
    )
    allowed = world.submit({**self_call, "evm": {"gas": 100_001}})
    assert allowed["status"] == "approved", allowed["policy"]
    # operation is a Safe wallet's field only
    with HttpClient(create_app(world.inst.runtime, run_worker=False)) as http:
        plain = Api(http.request, world.inst.client()).create(
            {**delegate, "wallet": world.executor.name}
        )
    assert plain.status_code == 422, plain.text
    assert "only for Safe wallets" in plain.json()["detail"]
    # a stuck execTransaction cannot be replaced yet: said, not half done
    with HttpClient(create_app(world.inst.runtime, run_worker=False)) as http:
        replacing = Api(http.request, world.inst.client()).create(
            {**withdrawal(name, 1, target), "replaces": allowed["id"]}
        )
    assert replacing.status_code == 422, replacing.text
    assert "not supported yet" in replacing.json()["detail"]


def test_concurrent_safe_withdrawals_take_consecutive_safe_and_executor_nonces(
    world: SafeWorld,
) -> None:
    deploy(world)
    world.anvil.fund(world.address, 3 * ETH)
    start = world.anvil.nonce(world.executor.address)
    destination = fresh_address()
    bodies = [withdrawal(world.safe["name"], 10**15 + i, destination) for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        created = list(pool.map(world.submit, bodies))
    payloads = [c["payload"]["transaction"] for c in created]
    assert sorted(int(p["nonce"]) for p in payloads) == list(range(6))
    assert sorted(int(p["executor"]["nonce"]) for p in payloads) == list(range(start, start + 6))
    world.settle([c["id"] for c in created])
    assert safe_nonce(world.anvil, world.address) == 6
    shown = ok_json(invoke(["wallets", "balance", world.safe["name"], "--json"], world.inst.env))
    assert shown["next_nonce"] == 6  # the Safe's own nonce, not its account's
    assert world.anvil.balance(destination) == sum(10**15 + i for i in range(6))


def test_an_existing_safe_is_adopted_only_with_its_owners_and_threshold(
    world: SafeWorld,
) -> None:
    deploy(world)  # the factory and singleton are there now
    from custody.chains.evm import safe as contracts
    from custody.chains.values import EvmAddress

    owners = [EvmAddress.parse(owner_address(world, label)) for label in world.owners]
    deployment = contracts.dev_deployment()
    salt = secrets.randbits(64)
    initializer = contracts.setup_initializer(owners, 2)
    data = contracts.create_proxy_calldata(deployment.singleton, initializer, salt)
    # made by someone else: anvil's development account calls the factory
    tx = world.anvil.rpc(
        "eth_sendTransaction",
        {
            "from": DEV_ACCOUNT,
            "to": str(deployment.factory),
            "data": "0x" + data.hex(),
            "gas": hex(1_000_000),
        },
    )
    receipt = world.anvil.rpc("eth_getTransactionReceipt", tx)
    if receipt is None:  # not mined yet (a busy machine): as Anvil.deploy does
        world.anvil.mine()
        receipt = world.anvil.rpc("eth_getTransactionReceipt", tx)
    assert int(receipt["status"], 16) == 1
    address = contracts.proxy_address(
        deployment, initializer, salt, contracts.creation_code("proxy")
    )
    args = [
        "wallets",
        "create",
        "adopted",
        "--chain",
        world.chain,
        "--safe",
        "--owners",
        ",".join(world.owners),
        "--executor",
        world.executor.name,
        "--address",
        str(address),
    ]
    wrong = invoke([*args, "--threshold", "3"], world.inst.env)
    assert wrong.returncode != 0
    assert "needs 2 signatures, not 3" in wrong.stderr
    adopted = ok_json(invoke([*args, "--threshold", "2", "--json"], world.inst.env))
    assert adopted["address"] == str(address)
    assert adopted["deployed"] is True
    listed = ok_json(invoke(["wallets", "list", "--json"], world.inst.env))
    (row,) = [w for w in listed if w["name"] == "adopted"]
    assert row["threshold"] == 2
    assert row["owners"] == world.owners
    assert json.dumps(row)  # plain JSON


def test_an_insider_who_lowers_the_threshold_gets_nothing_moved(world: SafeWorld) -> None:
    """The database says 1 of 3 and the stored payload agrees: custody then signs with one
    owner, but the Safe contract, which holds the real threshold, refuses the transaction."""
    deploy(world)
    world.anvil.fund(world.address, 2 * ETH)
    destination = fresh_address()
    created = world.submit(withdrawal(world.safe["name"], ETH, destination))
    with world.inst.runtime.db.write() as session:
        request = session.get(Request, created["id"])
        assert request is not None
        payload = json.loads(request.payload)
        payload["threshold"] = 1
        request.payload = json.dumps(payload, sort_keys=True)
        row = session.get(SafeWallet, request.wallet_id)
        assert row is not None
        row.threshold = 1
    world.settle([created["id"]], until="failed")
    reason = world.request(created["id"]).failure_reason or ""
    assert "reverted" in reason, reason  # by the contract, on chain (GS020: too few signatures)
    assert world.anvil.balance(destination) == 0
    assert world.anvil.balance(world.address) == 2 * ETH
    assert safe_nonce(world.anvil, world.address) == 0


def test_an_erc20_transfer_from_the_safe_is_judged_as_a_withdrawal_and_confirms(
    world: SafeWorld,
) -> None:
    """A test token (safe-eth-py's ERC20TestToken) minted to the Safe, registered as an asset:
    the usual contract-call body, judged as a withdrawal of that asset, sent by the executor."""
    import importlib.metadata

    deploy(world)
    path = importlib.metadata.distribution("safe-eth-py").locate_file(
        "safe_eth/eth/contracts/abis/ERC20TestToken.json"
    )
    artifact = json.loads(Path(str(path)).read_text())
    supply = 1_000_000 * 10**6
    constructor = encode(
        ["string", "string", "uint8", "address", "uint256"],
        ["Test Dollar", "TUSD", 6, world.address, supply],
    )
    token = world.anvil.deploy(artifact["bytecode"] + constructor.hex())
    ok_json(
        invoke(
            [
                *("assets", "add", "TUSD", "--chain", world.chain),
                *("--contract", token, "--decimals", "6", "--json"),
            ],
            world.inst.env,
        )
    )
    destination = fresh_address()
    transfer = keccak(text="transfer(address,uint256)")[:4] + encode(
        ["address", "uint256"], [destination, 250 * 10**6]
    )
    created = world.submit(
        {
            "type": "contract_call",
            "wallet": world.safe["name"],
            "to": token,
            "data": "0x" + transfer.hex(),
            "value": "0",
        }
    )
    assert created["status"] == "approved", created
    assert created["asset"] == "TUSD"
    assert created["amount"] == str(250 * 10**6)
    assert created["destination"].lower() == destination.lower()
    world.settle([created["id"]])
    (held,) = decode(
        ["uint256"], view(world.anvil, token, "balanceOf(address)", ["address"], [destination])
    )
    assert held == 250 * 10**6
    (left,) = decode(
        ["uint256"], view(world.anvil, token, "balanceOf(address)", ["address"], [world.address])
    )
    assert left == supply - 250 * 10**6


def test_an_executor_that_cannot_pay_yet_leaves_the_transaction_signed_until_it_can(
    world: SafeWorld,
) -> None:
    """The node refuses execTransaction while the executor has no ether: it stays `signed` and
    is sent again (judged by the executor's account nonce, not the Safe's), then confirms."""
    deploy(world)
    world.anvil.fund(world.address, 2 * ETH)
    destination = fresh_address()
    created = world.submit(withdrawal(world.safe["name"], ETH, destination))
    world.anvil.rpc("anvil_setBalance", world.executor.address, "0x0")
    signer = SignerWorker(world.inst.runtime, worker_id="safe-signer")
    assert signer.drain() == 1
    broadcaster = Broadcaster(world.inst.runtime)
    try:
        for _ in range(3):
            broadcaster.run_once()
    finally:
        broadcaster.close()
    assert world.request(created["id"]).status == "signed"
    world.anvil.rpc("anvil_setBalance", world.executor.address, hex(ETH))
    world.settle([created["id"]])
    assert world.anvil.balance(destination) == ETH


def test_a_nonce_a_deploy_signed_is_never_given_to_a_request(world: SafeWorld) -> None:
    """Signed and ledgered by `wallets deploy` but not (yet) seen by the node: intake skips it."""
    deploy(world)
    pending = world.anvil.nonce(world.executor.address)
    with world.inst.runtime.db.write() as session:
        executor = session.execute(
            select(Wallet).where(Wallet.name == world.executor.name)
        ).scalar_one()
        ledger.append(
            session,
            EventKind.WALLET_DEPLOY_SIGNED,
            "test",
            {
                "wallet": world.safe["name"],
                "executor": executor.name,
                "executor_wallet_id": executor.id,
                "nonce": pending,
                "to": world.address,
                "tx_hash": "0x" + "ab" * 32,
            },
        )
    created = world.submit(withdrawal(world.executor.name, 10**15, fresh_address()))
    assert created["payload"]["transaction"]["nonce"] == str(pending + 1)


def test_the_approver_sees_the_safe_its_threshold_and_the_executor(world: SafeWorld) -> None:
    """A Safe request waiting for one approval, on the approver app's page."""
    from custody.web import sessions
    from tests.support.approver_app import session_cookie

    deploy(world)
    world.inst.apply_policy(
        "version: 1\nrules:\n"
        "  - {id: safe, match: {type: withdrawal},"
        " action: {require_approvals: {count: 1, group: treasury}}}\n"
    )
    created = world.submit(withdrawal(world.safe["name"], ETH, fresh_address()))
    assert created["status"] == "pending_approval", created
    cookie = session_cookie(world.inst, ["treasury"], prefix="checker")
    with HttpClient(create_app(world.inst.runtime, run_worker=False)) as app:
        page = app.get(
            f"/app/requests/{created['id']}",
            headers={"Cookie": f"{sessions.COOKIE_NAME}={cookie}"},
        )
    assert page.status_code == 200, page.text
    assert 'id="safe"' in page.text
    assert "2 of 3 owners sign" in page.text
    assert world.address in page.text
    assert world.executor.address in page.text
    assert created["payload"]["digest"] in page.text  # what the approver signs


def test_bad_safe_options_get_one_clear_line_and_change_nothing(world: SafeWorld) -> None:
    before = len(world.inst.ledger_entries())
    base = ["wallets", "create", "bad-safe", "--chain", world.chain, "--safe"]
    owners = ["--owners", ",".join(world.owners)]
    executor = ["--executor", world.executor.name]
    twice = ["--owners", f"{world.owners[0]},{world.owners[0]}"]
    cases = [
        ([*base, *owners, "--threshold", "2"], "--executor"),
        (
            [*base, *owners, "--threshold", "4", "--executor", world.executor.name],
            "between 1 and 3",
        ),
        (
            [*base, *twice, "--threshold", "1", *executor],
            "named once",
        ),
        (
            [*base, *owners, "--threshold", "2", "--executor", world.safe["name"]],
            "single-key EVM wallet",
        ),
        (
            [*base, *owners, "--threshold", "2", *executor, "--address", "0x1234"],
            "address",
        ),
    ]
    for args, says in cases:
        result = invoke(args, world.inst.env)
        assert result.returncode != 0, args
        assert says in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert len(world.inst.ledger_entries()) == before
    listed = ok_json(invoke(["wallets", "list", "--json"], world.inst.env))
    assert "bad-safe" not in {w["name"] for w in listed}


def test_the_chains_fee_per_gas_cap_binds_deployment_and_the_executors_transaction(
    world: SafeWorld,
) -> None:
    """`chains set --max-fee-per-gas` judges the transaction that pays gas: a Safe request's
    executor's, and each deployment transaction."""
    cap = ["chains", "set", world.chain, "--max-fee-per-gas"]
    ok_json(invoke([*cap, "1", "--json"], world.inst.env))
    refused = invoke(["wallets", "deploy", world.safe["name"]], world.inst.env)
    assert refused.returncode != 0
    assert f"above chain {world.chain}'s cap of 1" in refused.stderr, refused.stderr
    assert world.anvil.rpc("eth_getCode", world.address, "latest") == "0x"
    ok_json(invoke([*cap, str(10**12), "--json"], world.inst.env))
    deploy(world)
    ok_json(invoke([*cap, "1", "--json"], world.inst.env))
    with HttpClient(create_app(world.inst.runtime, run_worker=False)) as http:
        answer = Api(http.request, world.inst.client()).create(
            withdrawal(world.safe["name"], ETH, fresh_address())
        )
    assert answer.status_code == 422, answer.text
    assert f"above chain {world.chain}'s cap of 1" in answer.json()["detail"]
