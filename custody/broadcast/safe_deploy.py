"""`custody wallets deploy NAME`: put a Safe wallet's proxy on chain, paid by its executor.

On a development chain without the canonical Safe contracts, the singleton and proxy factory
go first, through the chain's deterministic CREATE2 deployer, at the addresses the wallet's
address was computed with. Each transaction is built here, signed by the executor key in its
HSM token, checked in software (it must recover to the executor), sent, and followed to its
receipt; at the end the Safe's owners and threshold are read back from the chain, and only
then is the wallet marked deployed, with the transactions in the ledger.

The operator runs this once per Safe; it refuses while the executor has requests holding
nonces, so that its transactions never take a nonce a request was given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from custody.chains import EvmAddress, assemble_signed, build_eip1559, verify_signed
from custody.chains.evm import fees as fee_rules
from custody.chains.evm import safe
from custody.chains.evm.eip1559 import Eip1559Fields
from custody.chains.evm.rpc import EvmNode, NodeRefused
from custody.chains.evm.safe_node import has_code, read_safe
from custody.errors import CustodyError
from custody.intake.completion import fee_cap_problem
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.requests import repository as requests
from custody.runtime import Runtime
from custody.wallets import repository
from custody.wallets.safes import SafeMismatch, SafeSetup, mark_deployed, safe_setup

RECEIPT_TIMEOUT_SECONDS = 120.0


class DeployFailed(CustodyError):
    status = 409
    title = "Safe deployment failed"
    slug = "safe-deploy-failed"


@dataclass(frozen=True)
class Deployed:
    address: str
    transactions: list[str]
    already: bool


def deploy(
    rt: Runtime, name: str, *, actor: str, progress: Callable[[str], None] = lambda _: None
) -> Deployed:
    with rt.db.read() as session:
        wallet = repository.wallet_by_name(session, name)
        setup = safe_setup(session, wallet)
        busy = requests.nonce_holders(session, setup.executor.id)
    chain = setup.chain
    if chain.rpc_url is None or chain.evm_chain_id is None:
        raise DeployFailed(
            f"chain {chain.name} has no node: custody chains set {chain.name} --rpc-url URL"
        )
    address = EvmAddress.parse(wallet.address)
    sent: list[str] = []
    with EvmNode(
        chain.rpc_url,
        chain_name=chain.name,
        chain_id=chain.evm_chain_id,
        timeout=rt.settings.node_timeout_seconds,
    ) as node:
        already = has_code(node, address)
        if not already:
            if busy:
                raise DeployFailed(
                    f"executor wallet {setup.executor.name} has {busy} request(s) holding "
                    "nonces; deploy once they are confirmed, failed or cancelled"
                )
            sender = _Sender(rt, node, setup, actor)
            for label, contract, code in _development_contracts(node, setup):
                progress(f"deploying the Safe {label} at {contract}")
                sent.append(sender.send(safe.CREATE2_DEPLOYER, safe.DEV_SALT + code))
            progress(f"deploying Safe {wallet.name} at {address}")
            data = safe.create_proxy_calldata(
                setup.deployment.singleton, setup.initializer, setup.salt_nonce
            )
            sent.append(sender.send(setup.deployment.factory, data))
        _check_on_chain(node, address, setup)
    with rt.db.write() as session:
        wallet = repository.wallet_by_name(session, name)
        if not safe_setup(session, wallet).deployed:
            mark_deployed(session, wallet, tx_hashes=sent, actor=actor)
    return Deployed(str(address), sent, already)


def _development_contracts(node: EvmNode, setup: SafeSetup) -> list[tuple[str, EvmAddress, bytes]]:
    """The singleton and factory where the wallet's address expects them and nothing is yet."""
    if setup.deployment == safe.CANONICAL:
        if not has_code(node, safe.CANONICAL_FACTORY):
            raise DeployFailed(
                f"chain {setup.chain.name} has no Safe v{safe.VERSION} factory at "
                f"{safe.CANONICAL_FACTORY}: deploy the canonical Safe contracts there first"
            )
        return []
    if setup.deployment != safe.dev_deployment():
        raise DeployFailed("the wallet names Safe contracts custody cannot deploy")
    wanted = [
        ("singleton", setup.deployment.singleton, safe.creation_code("singleton")),
        ("factory", setup.deployment.factory, safe.creation_code("factory")),
    ]
    missing = [item for item in wanted if not has_code(node, item[1])]
    if missing and not has_code(node, safe.CREATE2_DEPLOYER):
        raise DeployFailed(
            f"chain {setup.chain.name} has neither the Safe contracts nor the CREATE2 deployer "
            f"at {safe.CREATE2_DEPLOYER} to put them there"
        )
    return missing


def _check_on_chain(node: EvmNode, address: EvmAddress, setup: SafeSetup) -> None:
    found = read_safe(node, address)
    if found is None:
        raise DeployFailed(f"no contract at {address} after deployment")
    expected = sorted(str(owner.address) for owner in setup.owners)
    if sorted(map(str, found.owners)) != expected or found.threshold != setup.threshold:
        raise SafeMismatch(
            f"the contract at {address} has owners {', '.join(map(str, found.owners))} and "
            f"threshold {found.threshold}, not the wallet's"
        )


class _Sender:
    """Transactions from the executor wallet, one at a time, each to its receipt."""

    def __init__(self, rt: Runtime, node: EvmNode, setup: SafeSetup, actor: str) -> None:
        self._rt, self._node, self._setup, self._actor = rt, node, setup, actor
        self._from = EvmAddress.parse(setup.executor.address)

    def send(self, to: EvmAddress, data: bytes) -> str:
        node, chain = self._node, self._setup.chain
        assert chain.evm_chain_id is not None
        tx = {"from": str(self._from), "to": str(to), "value": "0x0", "data": "0x" + data.hex()}
        try:
            gas = fee_rules.gas_limit(node.estimate_gas(tx))
        except NodeRefused as exc:
            raise DeployFailed(f"the node says the deployment would fail: {exc.message}") from None
        base, tips = node.fee_history(fee_rules.HISTORY_BLOCKS, fee_rules.TIP_PERCENTILE)
        fees = fee_rules.fees(base, tips, given_max_fee=None)
        problem = fee_cap_problem(
            max_fee=gas * fees.max_fee_per_gas,
            per_gas=fees.max_fee_per_gas,
            chain=chain,
            max_fee_wei=self._rt.settings.max_tx_fee_wei,
        )
        if problem is not None:
            raise DeployFailed(f"deploying: {problem}")
        nonce = node.pending_nonce(str(self._from))
        unsigned = build_eip1559(
            Eip1559Fields(
                chain_id=chain.evm_chain_id,
                nonce=nonce,
                to=to,
                value=0,
                gas=gas,
                max_fee_per_gas=fees.max_fee_per_gas,
                max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
                data=data,
            )
        )
        key = self._setup.executor_key
        signature = self._rt.token_for(key.token).sign_secp256k1(key.label, unsigned.digest.value)
        signed = assemble_signed(unsigned, signature.r, signature.s, signature.recovery_id)
        verify_signed(signed, self._from)
        result = signed.as_result()
        self._record(nonce, to, result["tx_hash"])
        try:
            node.send_raw(result["raw_transaction"])
        except NodeRefused as exc:
            raise DeployFailed(f"the node refused the transaction: {exc.message}") from None
        self._wait(result["tx_hash"])
        return result["tx_hash"]

    def _record(self, nonce: int, to: EvmAddress, tx_hash: str) -> None:
        """Ledgered before it is sent (a signature is seen only after its entry commits), under
        the lock that assigns nonces: no request holds the executor's nonces now, and from now on
        intake skips this one (custody.requests.repository.deploy_nonces_from)."""
        executor = self._setup.executor
        with self._rt.db.write() as session:
            ledger.lock(session)
            if requests.nonce_holders(session, executor.id):
                raise DeployFailed(
                    f"a request of executor wallet {executor.name} took a nonce meanwhile; "
                    "deploy again once it is confirmed, failed or cancelled"
                )
            ledger.append(
                session,
                EventKind.WALLET_DEPLOY_SIGNED,
                self._actor,
                {
                    "wallet": self._setup.wallet.name,
                    "executor": executor.name,
                    "executor_wallet_id": executor.id,
                    "nonce": nonce,
                    "to": str(to),
                    "tx_hash": tx_hash,
                },
            )

    def _wait(self, tx_hash: str) -> None:
        deadline = time.monotonic() + RECEIPT_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            receipt = self._node.receipt(tx_hash)
            if receipt is not None:
                if receipt.status != 1:
                    raise DeployFailed(f"transaction {tx_hash} reverted")
                return
            time.sleep(0.2)
        raise DeployFailed(
            f"transaction {tx_hash} was not mined within {RECEIPT_TIMEOUT_SECONDS} s"
        )
