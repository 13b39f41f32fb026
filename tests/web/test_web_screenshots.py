"""Phone-size screenshots of the queue and a request's detail, for docs/screenshots/."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from eth_account import Account

from tests.support.api import Api
from tests.support.installation import WalletInfo
from tests.web.conftest import PHONE, SCREENSHOTS, Phone, pending

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("quorum_wallet", ["treasury-hot"], indirect=True)
def test_queue_and_detail_at_phone_size(
    phones: Callable[..., tuple[Phone, str]],
    api: Api,
    quorum_wallet: WalletInfo,
    tmp_path: Path,
) -> None:
    folder = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    alice, token = phones(name="dana")
    pending(api, quorum_wallet, nonce=0, amount="250000000000000000")
    unknown = Account.create().address
    flagged = pending(
        api, quorum_wallet, nonce=1, amount="12500000000000000000", destination=unknown
    )
    alice.enrol(token)
    alice.login()
    page = alice.page
    assert page.viewport_size == PHONE
    page.locator("#queue").wait_for()
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / "queue.png"))

    alice.open_request(flagged["id"])
    flags = page.locator("#red-flags").inner_text()
    assert "not on any allowlist" in flags
    assert "New destination" in flags
    assert page.locator("#not-listed").is_visible()
    assert "12.5 ETH" in page.inner_text(".summary")
    assert "two-treasury" in page.inner_text("main")
    page.screenshot(path=str(folder / "detail.png"))
    assert (folder / "queue.png").stat().st_size > 10_000
