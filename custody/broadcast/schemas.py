"""A wallet's balance as `GET /v1/wallets` and `custody wallets balance --json` show it."""

from __future__ import annotations

from pydantic import Field

from custody.jsonshape import DecimalString, JsonModel


class WalletBalance(JsonModel):
    name: str
    chain: str
    address: str
    asset: str = Field(description="the chain's native asset, the one `balance` counts")
    connected: bool = Field(description="whether custody knows a node of this chain")
    balance: DecimalString | None = Field(
        description="base units at the latest block; null without a node, or when it did not answer"
    )
    pending: dict[str, DecimalString] = Field(
        description="per asset: what live requests not yet confirmed will move (base units)"
    )
    next_nonce: int | None = Field(description="the nonce custody gives the next request")
    node_error: str | None = Field(description="why the node gave no answer, if it did not")


class WalletList(JsonModel):
    items: list[WalletBalance]
