"""A captured token is accepted once, at every instant, whatever the purge of used nonces does.

Times are injected (no sleeps): the token was issued long ago, so purging at these instants
touches no other test's nonces.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from custody.clients.auth import CallContext, TokenRules, authenticate, purge_expired_nonces
from custody.errors import Unauthorized
from custody.store.models import ClientNonce
from tests.support.api import make_token
from tests.support.installation import ClientKeys, Installation

RULES = TokenRules(max_lifetime_seconds=60, clock_skew_seconds=30)
ISSUED = 1_700_000_000
LIFETIME = 30
URI = "/v1/requests?limit=1"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The token's last valid instant: its exp plus the allowed clock skew.
LAST_VALID = EPOCH + timedelta(seconds=ISSUED + LIFETIME + RULES.clock_skew_seconds)
MICROSECOND = timedelta(microseconds=1)
# Around the boundary, where whole-second expiry and fractional purge times used to disagree.
INSTANTS = [
    LAST_VALID - timedelta(seconds=1),
    LAST_VALID - timedelta(seconds=0.5),
    LAST_VALID - MICROSECOND,
    LAST_VALID,
    LAST_VALID + MICROSECOND,
    LAST_VALID + timedelta(seconds=0.25),
    LAST_VALID + timedelta(seconds=0.5),
    LAST_VALID + timedelta(seconds=1) - MICROSECOND,
    LAST_VALID + timedelta(seconds=1),
    LAST_VALID + timedelta(seconds=2.5),
    LAST_VALID + timedelta(minutes=10),
    LAST_VALID + timedelta(days=1),
]


def _present(installation: Installation, client: ClientKeys, token: str, now: datetime) -> None:
    call = CallContext("GET", URI, b"", idempotency_key=None, idempotency_required=False)
    authenticate(installation.runtime.db, f"Bearer {token}", call, RULES, now=now)


def _nonce_kept(installation: Installation, client: ClientKeys) -> bool:
    with installation.runtime.db.read() as session:
        query = select(ClientNonce).where(ClientNonce.client_id == client.id)
        return session.execute(query).first() is not None


def _replay(installation: Installation, client: ClientKeys, token: str, now: datetime) -> str:
    """Why the token was refused at `now`, or "accepted"."""
    try:
        _present(installation, client, token, now)
    except Unauthorized as refused:
        return refused.message
    return "accepted"


def test_a_replay_is_refused_at_every_instant_around_the_purge(installation: Installation) -> None:
    client = installation.client()
    token = make_token(client, "GET", URI, now=ISSUED, lifetime=LIFETIME)
    _present(installation, client, token, EPOCH + timedelta(seconds=ISSUED))

    outcomes: dict[datetime, str] = {}
    for moment in INSTANTS:
        with installation.runtime.db.write() as session:
            purge_expired_nonces(session, moment)
        if moment <= LAST_VALID:
            assert _nonce_kept(installation, client), f"nonce purged at {moment}"
        outcomes[moment] = _replay(installation, client, token, moment)
    assert [m for m, outcome in outcomes.items() if outcome == "accepted"] == []
    for moment, outcome in outcomes.items():
        assert ("already used" if moment <= LAST_VALID else "expired") in outcome, moment


@pytest.mark.parametrize(
    ("offset", "detail"),
    [
        pytest.param(timedelta(0), None, id="at-the-last-valid-instant"),
        pytest.param(MICROSECOND, "expired", id="one-microsecond-later"),
        pytest.param(timedelta(seconds=0.5), "expired", id="half-a-second-later"),
    ],
)
def test_expiry_is_exact_to_the_microsecond(
    installation: Installation, offset: timedelta, detail: str | None
) -> None:
    client = installation.client()
    token = make_token(client, "GET", URI, now=ISSUED, lifetime=LIFETIME)
    if detail is None:
        _present(installation, client, token, LAST_VALID + offset)
        return
    with pytest.raises(Unauthorized, match=detail):
        _present(installation, client, token, LAST_VALID + offset)


def test_iat_in_the_future_is_exact_too(installation: Installation) -> None:
    client = installation.client()
    issued_at = EPOCH + timedelta(seconds=ISSUED)
    skew = timedelta(seconds=RULES.clock_skew_seconds)
    early = make_token(client, "GET", URI, now=ISSUED, lifetime=LIFETIME)
    with pytest.raises(Unauthorized, match="future"):
        _present(installation, client, early, issued_at - skew - MICROSECOND)
    _present(installation, client, early, issued_at - skew)
