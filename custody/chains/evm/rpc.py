"""A small Ethereum JSON-RPC client over httpx: the few calls custody makes of a node.

Every call has a timeout. The node's chain id is checked before the first call and again after
any transport error (a reconnect, perhaps to another node behind the same URL): a node of
another chain gets nothing of ours, not a nonce question and certainly not a transaction.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from custody.errors import CustodyError

DEFAULT_TIMEOUT_SECONDS = 5.0


class NodeUnavailable(CustodyError):
    """The node did not answer (refused, timed out, or answered nonsense)."""

    status = 503
    title = "Chain node unavailable"
    slug = "node-unavailable"


class WrongChain(CustodyError):
    """The node serves another chain than the one configured: nothing is sent to it."""

    status = 503
    title = "Chain node serves another chain"
    slug = "node-wrong-chain"


class NodeRefused(CustodyError):
    """The node answered with a JSON-RPC error (a refused transaction, a revert)."""

    status = 422
    title = "Chain node refused"
    slug = "node-refused"

    def __init__(self, message: str, *, code: int | None = None, data: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    block_number: int
    block_hash: str
    status: int
    gas_used: int


def shown(url: str) -> str:
    """A node URL as messages show it: scheme, host and port; a provider's API key often sits
    in the path or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def quantity(value: int) -> str:
    return hex(value)


def from_quantity(value: object, what: str) -> int:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise NodeUnavailable(f"the node answered {what} with {value!r}, not a hex quantity")
    try:
        return int(value, 16)
    except ValueError:
        raise NodeUnavailable(f"the node answered {what} with {value!r}") from None


class EvmNode:
    """One node of one chain. Not thread-safe: each thread makes its own."""

    def __init__(
        self,
        url: str,
        *,
        chain_name: str,
        chain_id: int,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.url = url
        self.chain_name = chain_name
        self.chain_id = chain_id
        self._http = httpx.Client(timeout=timeout)
        self._ids = itertools.count(1)
        self._checked = False

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EvmNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the calls ---------------------------------------------------------------------------

    def check_chain(self) -> None:
        """Raise WrongChain unless the node serves the configured chain id."""
        served = from_quantity(self._raw("eth_chainId", []), "eth_chainId")
        if served != self.chain_id:
            raise WrongChain(
                f"the node at {shown(self.url)} serves chain id {served}, but chain "
                f"{self.chain_name} is configured with chain id {self.chain_id}: "
                "nothing is sent to it"
            )
        self._checked = True

    def ensure_chain(self) -> None:
        """Check the chain id unless this connection already did."""
        if not self._checked:
            self.check_chain()

    def call(self, method: str, params: list[Any]) -> Any:
        self.ensure_chain()
        return self._raw(method, params)

    def block_number(self) -> int:
        return from_quantity(self.call("eth_blockNumber", []), "eth_blockNumber")

    def pending_nonce(self, address: str) -> int:
        answer = self.call("eth_getTransactionCount", [address, "pending"])
        return from_quantity(answer, "eth_getTransactionCount")

    def mined_nonce(self, address: str) -> int:
        """How many of the address's transactions are in blocks (its next nonce on chain)."""
        answer = self.call("eth_getTransactionCount", [address, "latest"])
        return from_quantity(answer, "eth_getTransactionCount")

    def balance(self, address: str) -> int:
        return from_quantity(self.call("eth_getBalance", [address, "latest"]), "eth_getBalance")

    def estimate_gas(self, tx: dict[str, str]) -> int:
        return from_quantity(self.call("eth_estimateGas", [tx]), "eth_estimateGas")

    def fee_history(self, blocks: int, percentile: int) -> tuple[int, list[int]]:
        """The next block's base fee, and the tips paid at `percentile` in recent blocks."""
        answer = self.call("eth_feeHistory", [quantity(blocks), "latest", [percentile]])
        if not isinstance(answer, dict) or not answer.get("baseFeePerGas"):
            raise NodeUnavailable(f"eth_feeHistory answered {answer!r}")
        base = from_quantity(answer["baseFeePerGas"][-1], "baseFeePerGas")
        tips = [
            from_quantity(row[0], "reward")
            for row in answer.get("reward") or []
            if isinstance(row, list) and row
        ]
        return base, tips

    def send_raw(self, raw: str) -> str:
        answer = self.call("eth_sendRawTransaction", [raw])
        if not isinstance(answer, str):
            raise NodeUnavailable(f"eth_sendRawTransaction answered {answer!r}")
        return answer

    def transaction(self, tx_hash: str) -> dict[str, Any] | None:
        answer = self.call("eth_getTransactionByHash", [tx_hash])
        return answer if isinstance(answer, dict) else None

    def receipt(self, tx_hash: str) -> Receipt | None:
        answer = self.call("eth_getTransactionReceipt", [tx_hash])
        if answer is None or answer.get("blockNumber") is None:
            return None
        return Receipt(
            tx_hash=tx_hash,
            block_number=from_quantity(answer["blockNumber"], "blockNumber"),
            block_hash=str(answer["blockHash"]),
            status=from_quantity(answer.get("status", "0x1"), "status"),
            gas_used=from_quantity(answer.get("gasUsed", "0x0"), "gasUsed"),
        )

    def block_hash(self, number: int) -> str | None:
        answer = self.call("eth_getBlockByNumber", [quantity(number), False])
        return str(answer["hash"]) if isinstance(answer, dict) else None

    # -- transport ---------------------------------------------------------------------------

    def _raw(self, method: str, params: list[Any]) -> Any:
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        try:
            response = self._http.post(self.url, json=body)
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            self._checked = False  # whoever answers next is checked again first
            raise NodeUnavailable(
                f"chain {self.chain_name}: node at {shown(self.url)} did not answer {method}: "
                f"{type(exc).__name__}"
            ) from None
        if not isinstance(answer, dict):
            raise NodeUnavailable(f"chain {self.chain_name}: {method} answered {answer!r}")
        error = answer.get("error")
        if error is not None:
            message = error.get("message", str(error)) if isinstance(error, dict) else str(error)
            raise NodeRefused(
                f"chain {self.chain_name}: {method}: {message}",
                code=error.get("code") if isinstance(error, dict) else None,
                data=error.get("data") if isinstance(error, dict) else None,
            )
        return answer.get("result")
