"""Rate limits on the trading API, through the app: per source address before any token is
looked at, per client once its token verified. A refused call is a 429 problem with
`Retry-After` and changes nothing: no request, no ledger entry, no burnt token nonce.

Each test builds the app with its own small buckets and a clock it moves itself (never sleeps).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_network

import httpx
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import func, select

from custody.app import create_app
from custody.http.ratelimit import Kind, Rate, RateLimits
from custody.store.models import ClientNonce
from tests.http.test_http_ratelimit import FakeClock
from tests.support.api import Api, make_token, withdrawal
from tests.support.installation import Installation, WalletInfo

PEER = ("198.51.100.7", 50000)
PROBLEM = "https://custody.dev/problems/rate-limited"
ROOMY = Rate(1.0, 1_000)


def _limits(
    clock: FakeClock,
    *,
    address: Rate = ROOMY,
    client: Rate = ROOMY,
    trusted: tuple[str, ...] = (),
) -> RateLimits:
    return RateLimits(
        rates={
            Kind.ADDRESS: address,
            Kind.SIGN_IN: ROOMY,
            Kind.CLIENT: client,
            Kind.APPROVER: ROOMY,
        },
        trusted_proxies=[ip_network(t) for t in trusted],
        clock=clock,
    )


@contextmanager
def _app(
    installation: Installation, limits: RateLimits, peer: tuple[str, int] = PEER
) -> Iterator[HttpClient]:
    app = create_app(installation.runtime, run_worker=False, limits=limits)
    with HttpClient(app, client=peer) as http:
        yield http


def _nonces(installation: Installation) -> int:
    with installation.runtime.db.read() as session:
        return int(session.execute(select(func.count()).select_from(ClientNonce)).scalar_one())


def _assert_refused(answer: httpx.Response, retry_after: str, limit: str) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == retry_after
    problem = answer.json()
    assert problem["type"] == PROBLEM
    assert problem["status"] == 429
    assert problem["detail"].endswith(f"(rate limit: {limit})")


def test_unauthenticated_calls_are_limited_per_source_address(installation: Installation) -> None:
    clock = FakeClock()
    with _app(installation, _limits(clock, address=Rate(0.5, 3))) as http:
        garbage = {"Authorization": "Bearer not-a-token"}
        answers = [http.get("/v1/requests", headers=garbage) for _ in range(4)]
        assert [a.status_code for a in answers] == [401, 401, 401, 429]
        _assert_refused(answers[-1], retry_after="2", limit="address")
        clock.advance(2)
        assert http.get("/v1/requests", headers=garbage).status_code == 401
        assert http.get("/v1/requests", headers=garbage).status_code == 429


def test_a_call_over_the_address_limit_changes_nothing(
    installation: Installation, wallet: WalletInfo
) -> None:
    clock = FakeClock()
    with _app(installation, _limits(clock, address=Rate(0.5, 1))) as http:
        assert http.get("/healthz").status_code == 200  # not counted
        http.get("/v1/ledger/checkpoint")  # spends the one token
        api = Api(http.request, installation.client())
        before, nonces = installation.counts(), _nonces(installation)
        _assert_refused(api.create(withdrawal(wallet.name)), retry_after="2", limit="address")
        assert installation.counts() == before
        assert _nonces(installation) == nonces


def test_each_client_has_its_own_limit_after_its_token_verified(
    installation: Installation, wallet: WalletInfo
) -> None:
    clock = FakeClock()
    with _app(installation, _limits(clock, client=Rate(0.25, 2))) as http:
        first = Api(http.request, installation.client())
        second = Api(http.request, installation.client())  # same source address
        assert [first.call("GET", "/v1/requests").status_code for _ in range(2)] == [200, 200]
        before, nonces = installation.counts(), _nonces(installation)
        refused = first.create(withdrawal(wallet.name))
        _assert_refused(refused, retry_after="4", limit="client")
        assert installation.counts() == before  # no request, no ledger entry
        assert _nonces(installation) == nonces  # and the token's nonce is not burnt
        assert second.call("GET", "/v1/requests").status_code == 200
        clock.advance(4)
        assert first.create(withdrawal(wallet.name)).status_code == 201


def test_a_refused_token_stays_usable_once_the_bucket_refilled(installation: Installation) -> None:
    clock = FakeClock()
    with _app(installation, _limits(clock, client=Rate(1.0, 1))) as http:
        api = Api(http.request, installation.client())
        assert api.call("GET", "/v1/requests").status_code == 200
        token = make_token(api.client, "GET", "/v1/requests")
        assert api.call("GET", "/v1/requests", token=token).status_code == 429
        clock.advance(1)
        assert api.call("GET", "/v1/requests", token=token).status_code == 200
        assert api.call("GET", "/v1/requests", token=token).status_code in (401, 429)


def test_tokens_that_do_not_verify_never_spend_the_named_clients_budget(
    installation: Installation,
) -> None:
    clock = FakeClock()
    with _app(installation, _limits(clock, client=Rate(0.1, 2))) as http:
        victim = installation.client()
        forger = installation.client()
        for _ in range(5):
            forged = make_token(forger, "GET", "/v1/requests", sub=victim.id)
            answer = http.get("/v1/requests", headers={"Authorization": f"Bearer {forged}"})
            assert answer.status_code == 401
        api = Api(http.request, victim)
        assert [api.call("GET", "/v1/requests").status_code for _ in range(3)] == [200, 200, 429]


def test_health_endpoints_are_never_limited(installation: Installation) -> None:
    clock = FakeClock()
    with _app(installation, _limits(clock, address=Rate(0.01, 1))) as http:
        for _ in range(20):
            assert http.get("/healthz").status_code == 200
            assert http.get("/readyz").status_code == 200
            assert http.get("/metrics").status_code == 200
        # none of them took the address's one token
        assert http.get("/v1/ledger/checkpoint").status_code != 429
        assert http.get("/v1/ledger/checkpoint").status_code == 429
        assert http.get("/healthz").status_code == 200


def test_x_forwarded_for_is_believed_only_from_a_configured_proxy(
    installation: Installation,
) -> None:
    def spoofing(http: HttpClient) -> list[int]:
        return [
            http.get(
                "/v1/ledger/checkpoint", headers={"X-Forwarded-For": f"203.0.113.{n}"}
            ).status_code
            for n in range(3)
        ]

    proxy = ("10.0.0.2", 40000)
    with _app(installation, _limits(FakeClock(), address=Rate(0.01, 2)), peer=proxy) as http:
        assert spoofing(http)[-1] == 429  # by default the peer is the source, whatever it says
    trusting = _limits(FakeClock(), address=Rate(0.01, 2), trusted=("10.0.0.0/24",))
    with _app(installation, trusting, peer=proxy) as http:
        assert 429 not in spoofing(http)  # three clients behind the proxy, a bucket each
        same = [
            http.get("/v1/ledger/checkpoint", headers={"X-Forwarded-For": "203.0.113.0"})
            for _ in range(2)
        ]
        assert same[-1].status_code == 429  # 203.0.113.0's third call
    with _app(installation, trusting, peer=("198.51.100.7", 40000)) as http:
        assert spoofing(http)[-1] == 429  # only the configured proxies are believed


def test_the_default_limits_come_from_the_settings(installation: Installation) -> None:
    settings = installation.settings.model_copy(
        update={"rate_limit_address_per_second": 0.5, "rate_limit_address_burst": 2}
    )
    limits = RateLimits.from_settings(settings, clock=FakeClock())
    with _app(installation, limits) as http:
        answers = [http.get("/v1/ledger/checkpoint").status_code for _ in range(3)]
        assert answers[-1] == 429
    off = RateLimits.from_settings(settings.model_copy(update={"rate_limits": False}))
    with _app(installation, off) as http:
        assert 429 not in [http.get("/v1/ledger/checkpoint").status_code for _ in range(5)]


def test_the_openapi_document_declares_429_with_retry_after(installation: Installation) -> None:
    with _app(installation, _limits(FakeClock())) as http:
        document = http.get("/openapi.json").json()
    answer = document["paths"]["/v1/requests"]["post"]["responses"]["429"]
    assert "Retry-After" in answer["headers"]
    assert json.dumps(answer["content"]["application/problem+json"]["schema"]).count("Problem")


def test_a_new_idempotency_key_after_a_refusal_is_a_new_request(
    installation: Installation, wallet: WalletInfo
) -> None:
    """A refused create left nothing behind: the same key later creates the request once."""
    clock = FakeClock()
    with _app(installation, _limits(clock, client=Rate(1.0, 1))) as http:
        api = Api(http.request, installation.client())
        api.call("GET", "/v1/requests")
        key = str(uuid.uuid4())
        body = withdrawal(wallet.name, nonce=7)
        assert api.create(body, key=key).status_code == 429
        clock.advance(1)
        created = api.create(body, key=key)
        assert created.status_code == 201
        assert "idempotent-replayed" not in created.headers
