"""Bad request bodies get a clear problem+json answer and change nothing (invariant 10)."""

from __future__ import annotations

import copy
import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from api_checks import assert_problem

from tests.support.api import DESTINATION, Api, make_token, withdrawal
from tests.support.installation import Installation, WalletInfo

_nonces = itertools.count(1)


@pytest.fixture(scope="module")
def body_wallet(installation: Installation) -> WalletInfo:
    return installation.wallet()


def _valid(wallet: WalletInfo) -> dict[str, Any]:
    return withdrawal(wallet.name, nonce=next(_nonces))


def _refused(
    api: Api,
    installation: Installation,
    body: bytes,
    status: int = 422,
    detail: str | None = None,
    key: str | None = None,
) -> dict[str, Any]:
    before = installation.counts()
    response = api.create(body, key=key)
    problem = assert_problem(response, status, detail)
    assert installation.counts() == before
    return problem


def _with(path: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A change to one field (`evm.nonce`), or its removal when value is `...`."""

    def change(body: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(body)
        *parents, last = path.split(".")
        target = body
        for name in parents:
            target = target[name]
        if value is ...:
            del target[last]
        else:
            target[last] = value
        return body

    return change


def _raw_amount(text: str) -> Callable[[dict[str, Any]], bytes]:
    """The body with its amount replaced by raw JSON text (a number, say)."""

    def change(body: dict[str, Any]) -> bytes:
        encoded = json.dumps(body).encode()
        quoted = json.dumps(body["amount"]).encode()
        assert encoded.count(quoted) == 1
        return encoded.replace(quoted, text.encode())

    return change


def _raw_nonce(text: str) -> Callable[[dict[str, Any]], bytes]:
    """The body with its evm.nonce replaced by raw JSON text: json.dumps cannot write a number
    past Python's 4,300-digit limit, and a hostile client need not use Python."""

    def change(body: dict[str, Any]) -> bytes:
        encoded = json.dumps(body).encode()
        field = f'"nonce": {body["evm"]["nonce"]}'.encode()
        assert encoded.count(field) == 1
        return encoded.replace(field, b'"nonce": ' + text.encode())

    return change


def _wrong_checksum(address: str) -> str:
    # Flip the case of the first letter: still mixed case, so it claims a checksum, now wrong.
    for i, char in enumerate(address[2:], start=2):
        if char.isalpha():
            return address[:i] + char.swapcase() + address[i + 1 :]
    raise AssertionError("address has no letters")


CASES: list[Any] = [
    pytest.param(_raw_amount("1.5"), "fraction", id="amount-float"),
    pytest.param(_raw_amount("1000"), "amount", id="amount-json-int"),
    pytest.param(_raw_amount("1e18"), "exponent", id="amount-json-exponent"),
    pytest.param(_with("amount", "-1"), "amount", id="amount-negative"),
    pytest.param(_with("amount", "0"), "greater than zero", id="amount-zero"),
    pytest.param(_with("amount", "1e18"), "amount", id="amount-exponent-string"),
    pytest.param(_with("amount", "1.0"), "amount", id="amount-decimal-point"),
    pytest.param(_with("amount", " 1"), "amount", id="amount-leading-space"),
    pytest.param(_with("amount", "1 "), "amount", id="amount-trailing-space"),
    pytest.param(_with("amount", "+1"), "amount", id="amount-plus-sign"),
    pytest.param(_with("amount", "1_000"), "amount", id="amount-underscore"),
    pytest.param(_with("amount", "\u0661\u0662"), "amount", id="amount-arabic-digits"),
    pytest.param(_with("amount", str(2**256)), "too large", id="amount-2**256"),
    pytest.param(_with("amount", "9" * 10_000), "too large", id="amount-10000-digits"),
    pytest.param(_with("amount", "abc"), "amount", id="amount-not-numeric"),
    pytest.param(_with("amount", ""), "amount", id="amount-empty"),
    pytest.param(_with("amount", "007"), "leading zeros", id="amount-leading-zeros"),
    pytest.param(_with("amount", True), "amount", id="amount-bool"),
    pytest.param(_with("amount", None), "amount", id="amount-null"),
    pytest.param(_with("amount", ...), "amount", id="amount-missing"),
    pytest.param(_with("evm.nonce", 1.5), "fraction", id="nonce-float"),
    pytest.param(_with("evm.nonce", -1), "nonce", id="nonce-negative"),
    pytest.param(_with("evm.nonce", "5"), "nonce", id="nonce-string"),
    pytest.param(_with("evm.nonce", 2**64), "nonce", id="nonce-2**64"),
    pytest.param(_with("evm.nonce", True), "nonce", id="nonce-bool"),
    pytest.param(_with("evm.nonce", ...), "nonce", id="nonce-missing"),
    # Past int()'s 4,300-digit limit json.loads raised a bare ValueError: a 500, not a 422.
    pytest.param(_raw_nonce("9" * 4301), "4301 digits", id="nonce-4301-digits"),
    pytest.param(_raw_nonce("-" + "9" * 5000), "5000 digits", id="nonce-negative-5000-digits"),
    pytest.param(_raw_nonce("1" * 60_000), "60000 digits", id="nonce-60000-digits"),
    pytest.param(_raw_nonce("9" * 79), "79 digits", id="nonce-79-digits"),
    pytest.param(_raw_amount("9" * 5000), "5000 digits", id="amount-json-int-5000-digits"),
    pytest.param(_with("evm.gas", 20_999), "gas", id="gas-below-21000"),
    pytest.param(_with("evm.gas", "21000"), "gas", id="gas-string"),
    pytest.param(_with("evm.max_fee_per_gas", 30), "max_fee_per_gas", id="max-fee-number"),
    pytest.param(
        _with("evm.max_priority_fee_per_gas", "30000000001"),
        "max_priority_fee_per_gas",
        id="priority-fee-above-max-fee",
    ),
    pytest.param(_with("evm", ...), "evm", id="evm-missing"),
    pytest.param(
        _with("destination", DESTINATION[:-2]),
        "0x followed by 40 hex digits",
        id="destination-short",
    ),
    pytest.param(
        _with("destination", "0x" + "g" * 40),
        "0x followed by 40 hex digits",
        id="destination-not-hex",
    ),
    pytest.param(
        _with("destination", DESTINATION[2:]),
        "0x followed by 40 hex digits",
        id="destination-no-0x",
    ),
    pytest.param(
        _with("destination", "00" + DESTINATION[2:]),
        "0x followed by 40 hex digits",
        id="destination-00-prefix",
    ),
    pytest.param(
        _with("destination", DESTINATION + "00"),
        "0x followed by 40 hex digits",
        id="destination-long",
    ),
    pytest.param(
        _with("destination", _wrong_checksum(DESTINATION)),
        "checksum",
        id="destination-wrong-checksum",
    ),
    pytest.param(_with("asset", "USDC"), "USDC", id="asset-not-native"),
    pytest.param(
        _with("evm.max_fee_per_gas", "100000000000000000"), "in fees", id="fee-above-the-cap"
    ),
    pytest.param(_with("type", "foo"), "foo", id="type-unknown"),
    pytest.param(_with("type", "trade"), "trade request", id="withdrawal-body-as-trade"),
    pytest.param(
        _with("type", "sign_message"), "sign_message request", id="withdrawal-body-as-message"
    ),
    pytest.param(_with("type", ...), "type", id="type-missing"),
    pytest.param(_with("memo", "hello"), "memo", id="extra-field"),
    pytest.param(_with("evm.data", "0x"), "data", id="extra-evm-field"),
    pytest.param(
        lambda b: json.dumps(b)[:-1].encode() + b', "amount": "2"}', "duplicate", id="duplicate-key"
    ),
    pytest.param(lambda b: json.dumps([b]).encode(), "object", id="array-body"),
    pytest.param(lambda b: b'"withdrawal"', "object", id="string-body"),
    pytest.param(lambda b: json.dumps(b)[:-1].encode(), "JSON", id="truncated-json"),
    pytest.param(lambda b: b"", "JSON", id="empty-body"),
    pytest.param(lambda b: b"{'type': 'withdrawal'}", "JSON", id="python-not-json"),
    pytest.param(
        lambda b: json.dumps(b).encode().replace(b"1000000000000000", b"NaN"), None, id="nan"
    ),
    pytest.param(lambda b: b"\xff\xfe{}", "UTF-8", id="not-utf8"),
    pytest.param(lambda b: b"[" * 100_00 + b"]" * 100_00, None, id="deep-nesting"),
]


@pytest.mark.parametrize(("change", "detail"), CASES)
def test_bad_body_is_refused(
    api: Api,
    installation: Installation,
    body_wallet: WalletInfo,
    change: Callable[[dict[str, Any]], dict[str, Any] | bytes],
    detail: str | None,
) -> None:
    changed = change(_valid(body_wallet))
    raw = changed if isinstance(changed, bytes) else json.dumps(changed).encode()
    _refused(api, installation, raw, 422, detail)


def test_the_valid_body_used_above_is_accepted(
    api: Api, installation: Installation, body_wallet: WalletInfo
) -> None:
    """The cases above differ from this body in one thing only, so that thing is refused."""
    before = installation.counts()
    response = api.create(_valid(body_wallet))
    assert response.status_code == 201, response.text
    after = installation.counts()
    assert after["requests"] == before["requests"] + 1
    assert after["ledger"] > before["ledger"]


def test_bad_destination_error_names_the_field(
    api: Api, installation: Installation, body_wallet: WalletInfo
) -> None:
    """Like amount and the fee fields, a bad destination is named as such in the problem."""
    body = _with("destination", DESTINATION[:-2])(_valid(body_wallet))
    _refused(api, installation, json.dumps(body).encode(), 422, "destination")


def test_unknown_wallet_is_named(api: Api, installation: Installation) -> None:
    name = f"no-such-wallet-{uuid.uuid4().hex[:8]}"
    problem = _refused(api, installation, json.dumps(withdrawal(name)).encode(), 404, name)
    assert problem["type"].endswith("wallet-not-found")


HOSTILE_NUMBER = b'{"approver": "a", "decision": "approve", "signature": ' + b"7" * 5000 + b"}"


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("/v1/requests/req_000000000000000000000000/approvals", id="device-approval"),
        pytest.param("/v1/policy/proposals/1/approvals", id="policy-approval"),
    ],
)
def test_unauthenticated_json_endpoints_refuse_a_hostile_number(
    api: Api, installation: Installation, uri: str
) -> None:
    before = installation.counts()
    response = api.send("POST", uri, content=HOSTILE_NUMBER, headers={"Content-Type": "json"})
    assert_problem(response, 422, "5000 digits")
    assert installation.counts() == before


def test_simulate_refuses_a_hostile_number(
    api: Api, installation: Installation, body_wallet: WalletInfo
) -> None:
    body = _raw_nonce("9" * 5000)(_valid(body_wallet))
    assert_problem(api.call("POST", "/v1/policy/simulate", body), 422, "5000 digits")


# -- headers ------------------------------------------------------------------------------------


def _post_with_headers(api: Api, body: bytes, headers: dict[str, str]) -> httpx.Response:
    key = headers.get("Idempotency-Key")
    token = make_token(api.client, "POST", "/v1/requests", body, idempotency_key=key)
    return api.send(
        "POST",
        "/v1/requests",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"} | headers,
    )


@pytest.mark.parametrize(
    "headers",
    [
        # Missing altogether, it is refused by authentication (test_api_auth).
        pytest.param({"Idempotency-Key": ""}, id="empty"),
        pytest.param({"Idempotency-Key": "   "}, id="blank"),
        pytest.param({"Idempotency-Key": "k" * 201}, id="too-long"),
    ],
)
def test_idempotency_key_is_required(
    api: Api, installation: Installation, body_wallet: WalletInfo, headers: dict[str, str]
) -> None:
    body = json.dumps(_valid(body_wallet)).encode()
    before = installation.counts()
    assert_problem(_post_with_headers(api, body, headers), 422, "Idempotency-Key")
    assert installation.counts() == before


# -- size ----------------------------------------------------------------------------------------


def _oversized() -> bytes:
    return b'{"pad":"' + b"x" * (64 * 1024 + 100) + b'"}'


def test_oversized_body_with_content_length(api: Api, installation: Installation) -> None:
    body = _oversized()
    before = installation.counts()
    response = _post_with_headers(api, body, {"Idempotency-Key": str(uuid.uuid4())})
    assert_problem(response, 413)
    assert installation.counts() == before


def _chunks(body: bytes, size: int = 8192) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_oversized_chunked_body_in_process(api: Api, installation: Installation) -> None:
    body = _oversized()
    key = str(uuid.uuid4())
    token = make_token(api.client, "POST", "/v1/requests", body, idempotency_key=key)
    before = installation.counts()
    response = api.send(
        "POST",
        "/v1/requests",
        content=_chunks(body),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Idempotency-Key": key,
        },
    )
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)
    assert installation.counts() == before


def test_oversized_chunked_body_over_real_http(
    live_url: str, api: Api, installation: Installation
) -> None:
    body = _oversized()
    key = str(uuid.uuid4())
    token = make_token(api.client, "POST", "/v1/requests", body, idempotency_key=key)
    before = installation.counts()
    with httpx.Client(base_url=live_url, timeout=10) as client:
        response = client.post(
            "/v1/requests",
            content=_chunks(body),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Idempotency-Key": key,
            },
        )
    assert_problem(response, 413)
    assert installation.counts() == before


def test_body_just_under_the_limit_is_read(
    api: Api, installation: Installation, body_wallet: WalletInfo
) -> None:
    """Not refused for size: it reaches the decoder, which names the unknown field."""
    body = _valid(body_wallet)
    body["pad"] = ""
    raw = json.dumps(body).encode()
    body["pad"] = "x" * (64 * 1024 - len(raw))
    raw = json.dumps(body).encode()
    assert len(raw) == 64 * 1024
    _refused(api, installation, raw, 422, "pad")
