"""The contract every backend keeps (docs/design.md §2-§3), run on each backend.

These run on the backend's real clock (Redis uses the server's), so every
limit here refills so slowly that a test's own duration cannot matter.
"""

from __future__ import annotations

import math

import pytest

from bucketcore import Limit, Limiter
from bucketcore.errors import ConfigurationError, StoreClosed

HOURLY = Limit(5, 3600.0)  # one token per 12 minutes
DAILY = Limit(3, 86400.0)


def test_a_fresh_bucket_grants_its_burst_then_denies(limiter: Limiter) -> None:
    remaining = [limiter.acquire("alice", HOURLY).remaining for _ in range(5)]
    denied = limiter.acquire("alice", HOURLY)
    assert remaining == [4, 3, 2, 1, 0]
    assert not denied
    assert denied.remaining == 0
    assert 700 < denied.retry_after <= 720 + 1e-6  # one token is 720 s away
    assert 3500 < denied.reset_after <= 3600 + 1e-6


def test_an_allowed_decision_reports_the_time_until_full(limiter: Limiter) -> None:
    decision = limiter.acquire("alice", HOURLY, cost=2)
    assert decision.allowed
    assert decision.retry_after == 0.0
    assert 1400 < decision.reset_after <= 1440 + 1e-6


def test_try_acquire_agrees_with_acquire(limiter: Limiter) -> None:
    granted = [limiter.try_acquire("bob", DAILY) for _ in range(4)]
    assert granted == [True, True, True, False]
    assert not limiter.acquire("bob", DAILY)


def test_several_limits_consume_from_all_or_from_none(limiter: Limiter) -> None:
    roomy, tight = Limit(10, 3600.0), Limit(2, 3600.0)
    assert limiter.acquire("k", roomy, tight, cost=2).allowed
    denied = limiter.acquire("k", roomy, tight)
    assert not denied
    assert denied.limit == tight
    # The denied call took nothing from the roomy limit.
    assert limiter.peek("k", roomy).remaining == 7


def test_the_binding_limit_is_the_one_with_fewest_tokens_left(limiter: Limiter) -> None:
    roomy, tight = Limit(10, 3600.0), Limit(3, 3600.0)
    decision = limiter.acquire("k", roomy, tight)
    assert decision.limit == tight
    assert decision.remaining == 2


def test_a_denial_names_the_limit_with_the_longest_wait(limiter: Limiter) -> None:
    hourly, daily = Limit(1, 3600.0), Limit(1, 86400.0)
    assert limiter.acquire("k", hourly, daily)
    denied = limiter.acquire("k", hourly, daily)
    assert denied.limit == daily
    assert 86000 < denied.retry_after <= 86400 + 1e-6


def test_peek_consumes_nothing(limiter: Limiter) -> None:
    for _ in range(3):
        assert limiter.peek("k", HOURLY).remaining == 4
    assert limiter.acquire("k", HOURLY).remaining == 4


def test_peek_says_what_acquire_would_say_when_denied(limiter: Limiter) -> None:
    limiter.acquire("k", DAILY, cost=3)
    peeked = limiter.peek("k", DAILY)
    taken = limiter.acquire("k", DAILY)
    assert not peeked
    assert not taken
    assert peeked.remaining == taken.remaining == 0
    assert math.isclose(peeked.retry_after, taken.retry_after, abs_tol=1.0)


def test_refund_gives_tokens_back_capped_at_the_burst(limiter: Limiter) -> None:
    limiter.acquire("k", HOURLY, cost=5)
    limiter.refund("k", HOURLY, tokens=2)
    assert limiter.peek("k", HOURLY).remaining == 1  # 2 back, 1 needed by the peek
    limiter.refund("k", HOURLY, tokens=100)
    assert limiter.acquire("k", HOURLY).remaining == 4


def test_reset_makes_the_bucket_full(limiter: Limiter) -> None:
    limiter.acquire("k", HOURLY, cost=5)
    limiter.reset("k", HOURLY)
    assert limiter.acquire("k", HOURLY).remaining == 4


def test_a_cost_above_the_burst_can_never_succeed(limiter: Limiter) -> None:
    decision = limiter.acquire("k", HOURLY, cost=6)
    assert not decision
    assert decision.retry_after == math.inf
    assert "Retry-After" not in decision.headers()
    assert limiter.acquire("k", HOURLY, cost=5).allowed  # nothing was taken


def test_wait_refuses_a_cost_above_the_burst_at_once(limiter: Limiter) -> None:
    with pytest.raises(ConfigurationError, match="burst"):
        limiter.wait("k", HOURLY, cost=6, timeout=None)


def test_wait_that_cannot_succeed_in_time_returns_the_denial_and_takes_nothing(
    limiter: Limiter,
) -> None:
    limiter.acquire("k", HOURLY, cost=4)
    decision = limiter.wait("k", HOURLY, cost=2, timeout=0.05)
    assert not decision
    assert limiter.acquire("k", HOURLY).allowed  # the last token is still there


def test_limits_that_share_a_name_share_one_pool(limiter: Limiter) -> None:
    pizza = Limit(7, 30.0, name="general")
    pasta = Limit(7, 30.0, name="general")
    icecream = Limit(7, 30.0, name="special")
    for _ in range(4):
        limiter.acquire("alice", pizza)
    assert limiter.acquire("alice", pasta).remaining == 2
    assert limiter.acquire("alice", icecream).remaining == 6


def test_limits_with_one_reduced_rate_and_burst_are_one_pool(limiter: Limiter) -> None:
    # docs/design.md §2: an unnamed limit is its reduced rate and burst.
    one, two, sixty = Limit(1, 3600.0), Limit(2, 7200.0, burst=1), Limit(60, 216000.0, burst=1)
    assert limiter.acquire("pool", one)
    assert not limiter.acquire("pool", two)
    assert not limiter.acquire("pool", sixty)
    assert limiter.acquire("pool", Limit(1, 3600.0, burst=2))  # another burst, another pool


def test_keys_are_isolated(limiter: Limiter) -> None:
    limiter.acquire("alice", DAILY, cost=3)
    assert limiter.acquire("bob", DAILY).remaining == 2


def test_a_str_key_and_its_utf8_bytes_are_the_same_key(limiter: Limiter) -> None:
    limiter.acquire("zoë", DAILY)
    assert limiter.acquire("zoë".encode(), DAILY).remaining == 1


AWKWARD_KEYS: list[str | bytes] = [
    "",
    "a",
    "a:b",
    "a:",
    ":a",
    "a{b}",
    "{a}",
    "{a",
    "a}",
    "a\x00",
    "a\x00b",
    "\x00",
    "a:s:5/3600000000000ns/5",
    "n:general",
    b"\xff",
    b"\xff\x00",
    "\\",
    "a\\:b",
    "x" * 4096,
    b"y" * 4096,
    "é" * 2048,
]


def test_awkward_keys_never_share_a_bucket(limiter: Limiter) -> None:
    limit = Limit(len(AWKWARD_KEYS) + 1, 86400.0)
    named = Limit(len(AWKWARD_KEYS) + 1, 86400.0, name="general")
    for index, key in enumerate(AWKWARD_KEYS):
        assert limiter.acquire(key, limit, cost=index + 1).allowed
    for index, key in enumerate(AWKWARD_KEYS):
        left = limiter.peek(key, limit).remaining
        assert left == len(AWKWARD_KEYS) - index - 1, key
        assert limiter.peek(key, named).remaining == len(AWKWARD_KEYS), key


def test_a_denied_decision_carries_the_http_headers(limiter: Limiter) -> None:
    limit = Limit(1, 3600.0, name="hourly")
    limiter.acquire("k", limit)
    headers = limiter.acquire("k", limit).headers()
    assert headers["RateLimit-Policy"] == '"hourly";q=1;w=3600'
    assert headers["RateLimit"].startswith('"hourly";r=0;t=')
    assert 3500 < int(headers["Retry-After"]) <= 3600
    assert headers["X-RateLimit-Limit"] == "1"
    assert headers["X-RateLimit-Remaining"] == "0"


def test_acquire_many_decides_each_request_in_order(limiter: Limiter) -> None:
    decisions = limiter.acquire_many([("a", DAILY, 2), ("a", DAILY, 2), ("b", (DAILY,), 1)])
    assert [d.allowed for d in decisions] == [True, False, True]
    assert [d.remaining for d in decisions] == [1, 1, 2]


@pytest.mark.parametrize(
    ("key", "cost"),
    [
        (None, 1),
        (42, 1),
        (bytearray(b"k"), 1),
        ("k" * 4097, 1),
        (b"k" * 4097, 1),
        ("é" * 2049, 1),
        ("\ud800", 1),
        ("k", 0),
        ("k", -1),
        ("k", 1.0),
        ("k", 1.5),
        ("k", True),
        ("k", "1"),
        ("k", math.nan),
    ],
)
def test_bad_keys_and_costs_raise_configuration_error(
    limiter: Limiter, key: object, cost: object
) -> None:
    for call in (limiter.acquire, limiter.try_acquire, limiter.peek):
        with pytest.raises(ConfigurationError):
            call(key, HOURLY, cost=cost)  # type: ignore[arg-type]


@pytest.mark.parametrize("tokens", [0, -1, 1.5, True, math.inf])
def test_bad_refunds_raise_configuration_error(limiter: Limiter, tokens: object) -> None:
    with pytest.raises(ConfigurationError):
        limiter.refund("k", HOURLY, tokens=tokens)  # type: ignore[arg-type]


def test_limits_must_be_given_as_limit_objects(limiter: Limiter) -> None:
    for bad in [(), ("5/hour",), (HOURLY, HOURLY)]:
        with pytest.raises(ConfigurationError):
            limiter.acquire("k", *bad)  # type: ignore[arg-type]


def test_a_closed_limiter_refuses_every_call(limiter: Limiter) -> None:
    limiter.close()
    with pytest.raises(StoreClosed):
        limiter.acquire("k", HOURLY)
    with pytest.raises(StoreClosed):
        limiter.try_acquire("k", HOURLY)
    limiter.close()  # idempotent


# -- plans and live changes (docs/design.md §3) -------------------------------------------


def test_one_name_carries_other_rates_for_other_keys(limiter: Limiter) -> None:
    free, paid = Limit(1, 3600.0, name="tier"), Limit(100, 3600.0, name="tier")
    assert limiter.acquire("free-user", free).remaining == 0
    assert limiter.acquire("paid-user", paid).remaining == 99
    assert not limiter.acquire("free-user", free)
    assert limiter.acquire("paid-user", paid).remaining == 98


def test_an_upgrade_mid_stream_keeps_the_tokens_then_refills_at_the_new_rate(
    limiter: Limiter,
) -> None:
    basic, pro = Limit(5, 3600.0, name="plan"), Limit(50, 3600.0, name="plan")
    assert limiter.acquire("k", basic, cost=3).remaining == 2
    assert limiter.acquire("k", pro).remaining == 1  # the 2 held carry over
    assert limiter.acquire("k", pro).remaining == 0
    denied = limiter.acquire("k", pro)
    assert not denied
    assert 70 < denied.retry_after <= 72 + 1e-6  # a token per 72 s now, not 720 s


def test_a_downgrade_caps_the_tokens_at_the_new_burst(limiter: Limiter) -> None:
    pro, basic = Limit(50, 3600.0, name="plan"), Limit(5, 3600.0, name="plan")
    assert limiter.acquire("k", pro, cost=10).remaining == 40
    assert limiter.acquire("k", basic).remaining == 4
    assert limiter.acquire("k", basic, cost=4).remaining == 0
    denied = limiter.acquire("k", basic)
    assert 700 < denied.retry_after <= 720 + 1e-6


def test_a_burst_cut_below_the_tokens_held(limiter: Limiter) -> None:
    roomy, tight = Limit(10, 3600.0, name="plan"), Limit(10, 3600.0, burst=2, name="plan")
    assert limiter.acquire("k", roomy, cost=3).remaining == 7
    assert limiter.acquire("k", tight).remaining == 1
    assert limiter.acquire("k", tight).remaining == 0
    assert not limiter.acquire("k", tight)


# -- drain (docs/design.md §2) -------------------------------------------------------------


def test_a_drain_empties_the_bucket_until_then(limiter: Limiter) -> None:
    limiter.drain("k", HOURLY, seconds=30)
    denied = limiter.acquire("k", HOURLY)
    assert not denied
    assert denied.remaining == 0
    assert 29 < denied.retry_after <= 30 + 1e-6


def test_a_drain_longer_than_a_full_refill_holds(limiter: Limiter) -> None:
    fast = Limit(2, 1.0)  # full again within a second
    limiter.drain("k", fast, Limit(1, 3600.0), seconds=600)
    for _ in range(3):
        denied = limiter.acquire("k", fast)
        assert not denied
        assert 590 < denied.retry_after <= 600 + 1e-6


def test_a_drain_never_makes_a_bucket_fuller(limiter: Limiter) -> None:
    assert limiter.acquire("k", DAILY, cost=3)
    limiter.drain("k", DAILY, seconds=5)
    assert 28000 < limiter.acquire("k", DAILY).retry_after <= 28800 + 1e-6


def test_a_drain_refuses_bad_seconds(limiter: Limiter) -> None:
    for seconds in (-1, math.nan, math.inf, 366 * 86400):
        with pytest.raises(ConfigurationError):
            limiter.drain("k", HOURLY, seconds=seconds)
