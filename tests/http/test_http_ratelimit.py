"""Token buckets and source addresses, without an app: a clock the test moves, never sleeps.

What the buckets promise: a burst is admitted and the next call refused with the wait until a
token is back; refused calls take nothing; time refills them; and however many keys an attacker
sprays, the number of buckets held stays under the cap (idle ones are forgotten). The source
address is the TCP peer unless that peer is a configured proxy.
"""

from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor

import pytest

from custody.http.ratelimit import Buckets, Kind, Rate, RateLimited, RateLimits
from custody.settings import load_settings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _buckets(clock: FakeClock, per_second: float = 2.0, burst: int = 3, keys: int = 100) -> Buckets:
    return Buckets(Rate(per_second, burst), max_keys=keys, clock=clock)


def test_a_burst_is_admitted_then_the_wait_for_the_next_token_is_told() -> None:
    clock = FakeClock()
    buckets = _buckets(clock, per_second=2.0, burst=3)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # one token at 2 a second
    assert buckets.take("b") == 0.0  # another key has its own bucket


def test_refused_calls_take_nothing_and_time_refills_the_bucket() -> None:
    clock = FakeClock()
    buckets = _buckets(clock, per_second=2.0, burst=3)
    for _ in range(3):
        buckets.take("a")
    for _ in range(10):
        assert buckets.take("a") > 0  # hammering does not push the wait further out
    clock.advance(0.5)
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    clock.advance(60)  # long idle: full again, but never more than the burst
    assert [buckets.take("a") == 0.0 for _ in range(4)] == [True, True, True, False]


def test_memory_stays_bounded_when_addresses_are_sprayed() -> None:
    clock = FakeClock()
    buckets = _buckets(clock, keys=1_000)
    for n in range(20_000):
        buckets.take(f"198.18.{n // 256}.{n % 256}")
        assert len(buckets) <= 1_000
    assert len(buckets) == 1_000
    # idle buckets are full again after one refill time, and forgotten at the next call
    clock.advance(buckets.rate.refill_seconds)
    buckets.take("203.0.113.1")
    assert len(buckets) == 1


def test_only_buckets_idle_for_a_whole_refill_are_forgotten() -> None:
    clock = FakeClock()
    buckets = _buckets(clock, per_second=1.0, burst=2)  # refills in 2 s
    for _ in range(2):
        buckets.take("busy")
    buckets.take("idle")
    clock.advance(1.5)
    assert buckets.take("busy") == 0.0  # 1.5 tokens back, 0.5 left
    clock.advance(1.0)
    buckets.take("other")
    assert len(buckets) == 2  # "idle" (2.5 s idle) is gone, "busy" (1 s) kept its state:
    assert [buckets.take("busy") == 0.0 for _ in range(2)] == [True, False]  # 1.5 tokens, not 2


def test_a_refusal_is_a_429_problem_with_whole_seconds_to_wait() -> None:
    clock = FakeClock()
    limits = RateLimits(rates={Kind.CLIENT: Rate(0.1, 1)}, clock=clock)
    limits.admit_client("cli_1")
    with pytest.raises(RateLimited) as refused:
        limits.admit_client("cli_1")
    assert refused.value.status == 429
    assert refused.value.slug == "rate-limited"
    assert refused.value.headers() == {"Retry-After": "10"}
    assert "client" in refused.value.message
    limits.admit_client("cli_2")


def _scope(peer: str | None, *forwarded: str) -> dict[str, object]:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return {"type": "http", "client": (peer, 443) if peer else None, "headers": headers}


def _limits(*trusted: str, ipv6_prefix: int = 64) -> RateLimits:
    networks = [ipaddress.ip_network(t) for t in trusted]
    return RateLimits(rates={}, trusted_proxies=networks, ipv6_prefix=ipv6_prefix)


def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() -> None:
    assert _limits().source(_scope("198.51.100.7", "203.0.113.9")) == "198.51.100.7"
    assert _limits().source(_scope("127.0.0.1", "203.0.113.9")) == "127.0.0.1"
    untrusted_peer = _limits("10.0.0.0/8").source(_scope("198.51.100.7", "203.0.113.9"))
    assert untrusted_peer == "198.51.100.7"


def test_behind_trusted_proxies_the_right_most_untrusted_entry_is_the_source() -> None:
    limits = _limits("10.0.0.0/8")
    assert limits.source(_scope("10.0.0.2", "203.0.113.9")) == "203.0.113.9"
    # entries a client wrote itself sit left of what the proxies appended: ignored
    assert limits.source(_scope("10.0.0.2", "1.2.3.4, 203.0.113.9, 10.0.0.3")) == "203.0.113.9"
    # several header lines are one list, in order
    assert limits.source(_scope("10.0.0.2", "1.2.3.4", "203.0.113.9")) == "203.0.113.9"
    # ports and brackets as some proxies write them
    assert limits.source(_scope("10.0.0.2", "203.0.113.9:5555")) == "203.0.113.9"
    # garbage stops the walk at the last trusted hop; so does a missing header
    assert limits.source(_scope("10.0.0.2", "203.0.113.9, junk")) == "10.0.0.2"
    assert limits.source(_scope("10.0.0.2")) == "10.0.0.2"
    # only proxies all the way: the left-most of them
    assert limits.source(_scope("10.0.0.2", "10.0.0.9")) == "10.0.0.9"


def test_ipv6_sources_are_grouped_by_prefix() -> None:
    limits = _limits()
    one = limits.source(_scope("2001:db8:1:2::1"))
    assert one == limits.source(_scope("2001:db8:1:2:ffff::9")) == "2001:db8:1:2::/64"
    assert one != limits.source(_scope("2001:db8:1:3::1"))
    assert _limits(ipv6_prefix=128).source(_scope("2001:db8::1")) == "2001:db8::1/128"
    assert limits.source(_scope("::ffff:198.51.100.7")) == "198.51.100.7"
    mapped_proxy = _limits("10.0.0.0/8").source(_scope("::ffff:10.0.0.2", "203.0.113.9"))
    assert mapped_proxy == "203.0.113.9"
    behind = _limits("2001:db8:ffff::/48").source(_scope("2001:db8:ffff::1", "[2001:db8:5::7]:80"))
    assert behind == "2001:db8:5::/64"


def test_a_peer_that_is_no_address_is_its_own_key() -> None:
    assert _limits().source(_scope("testclient")) == "testclient"
    assert _limits().source(_scope(None)) == "unknown"


def test_settings_defaults_and_trusted_proxies_from_the_environment(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(str(tmp_path))
    assert settings.rate_limits is True
    assert settings.trusted_proxies == ()
    monkeypatch.setenv("CUSTODY_TRUSTED_PROXIES", "10.0.0.2, 192.168.0.0/16,fd00::/8")
    monkeypatch.setenv("CUSTODY_RATE_LIMIT_CLIENT_BURST", "7")
    settings = load_settings(str(tmp_path))
    assert [str(n) for n in settings.trusted_proxies] == [
        "10.0.0.2/32",
        "192.168.0.0/16",
        "fd00::/8",
    ]
    limits = RateLimits.from_settings(settings)
    assert limits.buckets[Kind.CLIENT].rate.burst == 7
    assert limits.source(_scope("192.168.4.4", "203.0.113.9")) == "203.0.113.9"


def test_concurrent_takes_admit_exactly_the_burst() -> None:
    """The middleware runs on the event loop, the per-client check in worker threads: a bucket
    shared by both must never admit a call twice."""
    clock = FakeClock()  # time stands still: no refill
    buckets = _buckets(clock, per_second=1.0, burst=500)

    def hammer(_: int) -> int:
        return sum(buckets.take("shared") == 0.0 for _ in range(200))

    with ThreadPoolExecutor(8) as pool:
        admitted = sum(pool.map(hammer, range(8)))
    assert admitted == 500
