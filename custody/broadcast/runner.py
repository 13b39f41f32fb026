"""The broadcaster thread of `custody serve` (its background process) and `custody worker`.

Every `CUSTODY_BROADCAST_POLL_SECONDS` it runs one round per connected chain. A node that
serves another chain id stops broadcasting on that chain (logged as an error on every round
until the configuration or the node is fixed); a node that does not answer is tried again next
round. Several broadcasters may run (one per worker host): each status change is made under
the request's row lock and only from the status the round read, so none is made twice.
"""

from __future__ import annotations

import logging
import threading

from custody.broadcast.service import ChainInfo, follow_chain, info
from custody.catalog.chains import connected_chains
from custody.chains.evm.rpc import EvmNode, NodeUnavailable, WrongChain
from custody.errors import CustodyError
from custody.runtime import Runtime

log = logging.getLogger("custody.broadcast")


class Broadcaster:
    """Holds one node connection per connected chain across rounds."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._nodes: dict[int, tuple[str, int, EvmNode]] = {}

    def run_once(self) -> int:
        """One round over every connected chain; returns how many requests changed status."""
        with self._runtime.db.read() as session:
            chains = [(info(c), c.rpc_url, c.evm_chain_id) for c in connected_chains(session)]
        moved = 0
        for chain, url, evm_chain_id in chains:
            assert url is not None
            assert evm_chain_id is not None  # connected_chains: EVM chains only
            node = self._node(chain, url, evm_chain_id)
            try:
                moved += follow_chain(self._runtime.db, chain, node)
            except WrongChain as exc:
                log.error("chain %s: broadcasting stopped: %s", chain.name, exc.message)
            except NodeUnavailable as exc:
                log.warning("chain %s: %s", chain.name, exc.message)
        return moved

    def _node(self, chain: ChainInfo, url: str, evm_chain_id: int) -> EvmNode:
        known = self._nodes.get(chain.id)
        if known is not None and known[:2] == (url, evm_chain_id):
            return known[2]
        if known is not None:
            known[2].close()
        node = EvmNode(
            url,
            chain_name=chain.name,
            chain_id=evm_chain_id,
            timeout=self._runtime.settings.node_timeout_seconds,
        )
        self._nodes[chain.id] = (url, evm_chain_id, node)
        return node

    def close(self) -> None:
        for _, _, node in self._nodes.values():
            node.close()
        self._nodes.clear()


def run_broadcaster(runtime: Runtime, stop: threading.Event) -> None:
    broadcaster = Broadcaster(runtime)
    interval = runtime.settings.broadcast_poll_seconds
    try:
        while not stop.wait(interval):
            try:
                broadcaster.run_once()
            except CustodyError as exc:
                log.warning("broadcaster: %s", exc.message)
            except Exception:
                log.exception("broadcaster error")
    finally:
        broadcaster.close()


def start_broadcaster(runtime: Runtime, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(
        target=run_broadcaster, args=(runtime, stop), name="broadcaster", daemon=True
    )
    thread.start()
    return thread
