"""`custody.client.AsyncClient` does what `Client` does, against the same real server."""

from __future__ import annotations

import itertools
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from custody.client import AsyncClient, InvalidRequest, RetryPolicy
from tests.client.faults import AsyncLosesFirstAnswer
from tests.support import loops
from tests.support.api import withdrawal
from tests.support.installation import ClientKeys, WalletInfo

_nonces = itertools.count(10_000)  # apart from the sync tests' nonces on a shared wallet


def test_the_async_client_creates_waits_retries_and_raises_problems(
    live_url: str, desk: ClientKeys, wallet: WalletInfo
) -> None:
    async def scenario() -> None:
        transport = AsyncLosesFirstAnswer()
        async with (
            httpx.AsyncClient(transport=transport) as http,
            AsyncClient(
                live_url,
                desk.id,
                desk.private_key,
                http=http,
                retry=RetryPolicy(attempts=3, first_backoff=0.01),
            ) as custody,
        ):
            body = withdrawal(wallet.name, amount="77", nonce=next(_nonces))
            created = await custody.create(body)
            assert created.replayed  # its first answer was lost: the retry replays it
            first, retry = transport.posts
            assert first.headers["Idempotency-Key"] == retry.headers["Idempotency-Key"]

            signed = await custody.wait(created.id, timeout=30, until={"signed"})
            assert signed.result is not None
            assert Account.recover_transaction(signed.result["raw_transaction"]) == wallet.address
            assert [r.id for r in (await custody.list()).items] == [created.id]

            with pytest.raises(InvalidRequest) as refused:
                await custody.create({**body, "color": "blue"})
            assert refused.value.status == 422
            assert "color" in refused.value.detail

    loops.run(scenario)


def test_the_async_client_from_files(live_url: str, desk: ClientKeys, tmp_path: Path) -> None:
    id_file, pem = tmp_path / "client-id", tmp_path / "client.pem"
    id_file.write_text(desk.id + "\n")
    pem.write_bytes(desk.private_pem())

    async def scenario() -> None:
        async with AsyncClient.from_files(live_url, id_file, pem) as custody:
            assert custody.client_id == desk.id
            assert (await custody.list(limit=5)).items == []

    loops.run(scenario)
