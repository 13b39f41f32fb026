"""Phone-size screenshots of the queue and a request's detail, for docs/screenshots/."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from eth_account import Account

from tests.support.api import Api
from tests.support.installation import WalletInfo
from tests.web.conftest import PHONE, SCREENSHOTS, Phone, pending

pytestmark = pytest.mark.slow


def test_queue_and_detail_at_phone_size(
    phones: Callable[..., tuple[Phone, str]], api: Api, quorum_wallet: WalletInfo
) -> None:
    alice, token = phones()
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
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "queue.png"))

    alice.open_request(flagged["id"])
    flags = page.locator("#red-flags").inner_text()
    assert "not on any allowlist" in flags
    assert "New destination" in flags
    assert page.locator("#not-listed").is_visible()
    assert "12.5 ETH" in page.inner_text(".summary")
    assert "two-treasury" in page.inner_text("main")
    page.screenshot(path=str(SCREENSHOTS / "detail.png"))
