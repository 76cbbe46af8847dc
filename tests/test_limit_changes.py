"""Limits that change on live buckets, and drains (docs/design.md §3, §7), at fixed instants.

The conversion and the hold are ``_gcra.converted``, ``_gcra.drained`` and
``_gcra.clamped``; ``_buckets.adopt`` is where memory:// (both paths)
meets them. tests/test_contract.py runs the same rules on every backend.
"""

from __future__ import annotations

import math

import pytest

from bucketcore import ConfigurationError, Limit, Limiter
from bucketcore._gcra import MAX_DRAIN_NS, clamped, converted, drained, evaluate
from bucketcore.memory import PURE_PYTHON_VARIABLE, MemoryStore
from tests.conftest import FakeClock

SECOND = 1_000_000_000

TEN_PER_SECOND = Limit(10, 1.0)  # a token every 100 ms
HUNDRED_PER_SECOND = Limit(100, 1.0)  # every 10 ms
TWO_PER_SECOND = Limit(2, 1.0)  # every 500 ms
SEVEN_PER_30S = Limit(7, 30.0)  # every 30/7 s: units are not nanoseconds
BURST_3 = Limit(10, 1.0, burst=3)


def _tokens_held(limit: Limit, tat: int | None, now_ns: int) -> float:
    if tat is None:
        return float(limit.burst or 0)
    return (limit.capacity_units - (tat - now_ns * limit.units_per_ns)) / limit.token_units


@pytest.mark.parametrize(
    ("old", "old_tat_ns", "new", "tokens_after"),
    [
        # Upgrade: the 4 tokens held carry over, then refill at the new rate.
        (TEN_PER_SECOND, 600_000_000, HUNDRED_PER_SECOND, 4),
        # Downgrade: capped at the new burst (full, so no state at all).
        (TEN_PER_SECOND, 600_000_000, TWO_PER_SECOND, None),
        # Burst cut below the tokens held: 10 held, burst 3, capped.
        (TEN_PER_SECOND, None, BURST_3, None),
        (TEN_PER_SECOND, 800_000_000, BURST_3, 2),
        # An empty bucket stays empty whatever the rate.
        (TEN_PER_SECOND, SECOND, SEVEN_PER_30S, 0),
        # Fractions carry over, rounded towards fewer: 2.5 tokens of 10/s.
        (TEN_PER_SECOND, 750_000_000, SEVEN_PER_30S, 2.5),
    ],
)
def test_the_tokens_held_carry_over_capped_at_the_new_burst(
    old: Limit, old_tat_ns: int | None, new: Limit, tokens_after: float | None
) -> None:
    tat = None if old_tat_ns is None else old_tat_ns * old.units_per_ns
    result = converted(old.signature, new.signature, tat, now_ns=0)
    if tokens_after is None:
        assert result is None
    else:
        held = _tokens_held(new, result, 0)
        assert tokens_after - 1 / new.token_units <= held <= tokens_after


def test_a_conversion_rounds_towards_fewer_tokens() -> None:
    # 1/3 of a 10/s token in 7/30s units is not a whole number of units.
    tat = SECOND - 100_000_000 // 3  # 1/3 token held (in ns units of 10/s)
    result = converted(TEN_PER_SECOND.signature, SEVEN_PER_30S.signature, tat, now_ns=0)
    assert result is not None
    assert _tokens_held(SEVEN_PER_30S, result, 0) <= 1 / 3


def test_a_held_bucket_keeps_the_instant_of_its_first_token() -> None:
    until = 5 * SECOND
    tat = drained(TWO_PER_SECOND, None, now_ns=0, until_ns=until)
    result = converted(TWO_PER_SECOND.signature, SEVEN_PER_30S.signature, tat, 0, until)
    step = evaluate(SEVEN_PER_30S, result, 0, 1, held_until_ns=until)
    assert (step.allowed, step.retry_ns) == (False, until)


@pytest.mark.parametrize(
    ("limit", "tat", "until_ns", "retry_ns"),
    [
        (TWO_PER_SECOND, None, 5 * SECOND, 5 * SECOND),  # longer than a full refill
        (TWO_PER_SECOND, None, 0, 0),  # Retry-After: 0 leaves one token
        (TWO_PER_SECOND, None, 300_000_000, 300_000_000),
        (TWO_PER_SECOND, SECOND, 300_000_000, 500_000_000),  # emptier already: as it was
        (SEVEN_PER_30S, None, 10 * SECOND, 10 * SECOND),
    ],
)
def test_a_drained_bucket_gives_its_first_token_at_the_deadline(
    limit: Limit, tat: int | None, until_ns: int, retry_ns: int
) -> None:
    state = drained(limit, None if tat is None else tat * limit.units_per_ns, 0, until_ns)
    step = evaluate(limit, state, 0, 1, held_until_ns=until_ns)
    assert step.retry_ns == retry_ns
    assert step.remaining == 0


def test_the_clamp_keeps_a_hold_and_nothing_beyond_it() -> None:
    limit = TWO_PER_SECOND
    state = drained(limit, None, 0, until_ns=5 * SECOND)
    assert clamped(limit, state, 0, held_until_ns=5 * SECOND) == state
    assert clamped(limit, state, 0) == limit.capacity_units  # no hold: a clock step
    assert clamped(limit, state, 0, held_until_ns=2 * SECOND) < state


# -- memory:// (both paths) ------------------------------------------------------------


@pytest.fixture(params=["c", "python"])
def store(request: pytest.FixtureRequest, clock: FakeClock) -> MemoryStore:
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "python":
            patch.setenv(PURE_PYTHON_VARIABLE, "1")
        return MemoryStore(clock=clock)


def _retry_ns(store: MemoryStore, limit: Limit) -> float:
    return store.checked_peek("k", limit).retry_after * 1e9


def test_a_plan_upgrade_keeps_the_tokens_and_refills_faster(
    store: MemoryStore, clock: FakeClock
) -> None:
    basic, pro = Limit(5, 60.0, name="plan"), Limit(60, 60.0, name="plan")
    assert store.checked_acquire("k", basic, cost=4).remaining == 1
    assert store.checked_acquire("k", pro).remaining == 0
    assert not store.checked_try_acquire("k", pro)
    assert _retry_ns(store, pro) == pytest.approx(SECOND, abs=1)  # 60/60s
    clock.advance(1.0)
    assert store.checked_try_acquire("k", pro)


def test_a_downgrade_caps_and_a_burst_cut_caps_below_the_tokens_held(
    store: MemoryStore,
) -> None:
    pro, basic = Limit(60, 60.0, name="plan"), Limit(5, 60.0, name="plan")
    assert store.checked_acquire("k", pro, cost=10).remaining == 50
    assert store.checked_acquire("k", basic).remaining == 4
    small = Limit(5, 60.0, burst=2, name="plan")
    assert store.checked_acquire("k", small).remaining == 1
    assert _retry_ns(store, small) == 0


def test_one_name_carries_other_rates_for_other_keys(store: MemoryStore) -> None:
    free, paid = Limit(1, 60.0, name="tier"), Limit(100, 60.0, name="tier")
    assert store.checked_acquire("free-user", free).remaining == 0
    assert store.checked_acquire("paid-user", paid).remaining == 99
    assert not store.checked_try_acquire("free-user", free)
    assert store.checked_acquire("paid-user", paid).remaining == 98


def test_a_drain_longer_than_a_refill_is_not_undone(store: MemoryStore, clock: FakeClock) -> None:
    limit = TWO_PER_SECOND
    store.drain("k", (limit,), 30 * SECOND)
    for _ in range(3):  # C hands the held bucket to Python, which keeps the hold
        assert not store.checked_try_acquire("k", limit)
        assert not store.checked_acquire("k", limit)
    assert 30 * SECOND <= _retry_ns(store, limit) < 30 * SECOND + 1_000
    clock.advance(ns=30 * SECOND - 1)
    assert not store.checked_try_acquire("k", limit)
    clock.advance(ns=1)
    assert store.checked_try_acquire("k", limit)
    assert not store.checked_try_acquire("k", limit)


def test_a_shorter_drain_does_not_undo_a_longer_one(store: MemoryStore) -> None:
    store.drain("k", (TWO_PER_SECOND,), 30 * SECOND)
    store.drain("k", (TWO_PER_SECOND,), 5 * SECOND)
    assert _retry_ns(store, TWO_PER_SECOND) >= 30 * SECOND


def test_a_drain_never_makes_a_bucket_fuller(store: MemoryStore) -> None:
    limit = Limit(1, 60.0)
    assert store.checked_acquire("k", limit)
    store.drain("k", (limit,), SECOND)
    assert _retry_ns(store, limit) >= 60 * SECOND


def test_a_clock_step_back_never_stretches_a_hold_beyond_what_was_asked(
    store: MemoryStore, clock: FakeClock
) -> None:
    limit = TWO_PER_SECOND
    store.drain("k", (limit,), 10 * SECOND)
    clock.advance(4.0)
    clock.advance(-100.0)  # the clock steps back
    retry = store.checked_acquire("k", limit).retry_after
    assert 9.9 < retry <= 10.0 + 1e-6  # at most the 10 s asked, not 106 s
    clock.advance(ns=math.ceil(retry * 1e9))
    assert store.checked_try_acquire("k", limit)  # and the wait it reported comes true


def test_a_plan_change_during_a_hold_keeps_its_deadline(
    store: MemoryStore, clock: FakeClock
) -> None:
    basic, pro = Limit(2, 1.0, name="plan"), Limit(1000, 1.0, name="plan")
    store.drain("k", (basic,), 20 * SECOND)
    assert 20 * SECOND <= _retry_ns(store, pro) < 20 * SECOND + 1_000
    clock.advance(20.0)
    assert store.checked_acquire("k", pro)


def test_held_buckets_are_swept_once_full(store: MemoryStore, clock: FakeClock) -> None:
    for index in range(200):
        store.drain(f"k{index}", (TWO_PER_SECOND,), 5 * SECOND)
    clock.advance(3600.0)
    for index in range(200):
        store.checked_acquire(f"new{index}", TWO_PER_SECOND)
    assert len(store) < 300


@pytest.mark.parametrize("seconds", [-1, math.nan, math.inf, MAX_DRAIN_NS / 1e9 + 1, "1", None])
def test_drain_refuses_bad_seconds(seconds: object) -> None:
    with pytest.raises(ConfigurationError, match="seconds"):
        Limiter().drain("k", Limit(1, 1.0), seconds=seconds)  # type: ignore[arg-type]


def test_the_same_name_twice_in_one_call_is_still_an_error() -> None:
    with pytest.raises(ConfigurationError, match="twice"):
        Limiter().acquire("k", Limit(1, 1.0, name="a"), Limit(2, 1.0, name="a"))
