"""The bucket arithmetic at fixed instants (table tests, no clock, no sleeping)."""

from __future__ import annotations

import pytest

from bucketcore import Limit
from bucketcore._gcra import NEVER, evaluate, is_full, refunded

SECOND = 1_000_000_000

TWO_PER_SECOND = Limit(2, 1.0)  # a token every 500 ms, burst 2
SEVEN_PER_30S = Limit(7, 30.0)  # a token every 30/7 s: not a whole number of ns
BURSTY = Limit(1, 1.0, burst=3)


@pytest.mark.parametrize(
    ("limit", "tat", "now", "cost", "allowed", "remaining", "retry_ns", "reset_ns"),
    [
        # A full bucket (no state) grants up to its burst.
        (TWO_PER_SECOND, None, 0, 1, True, 1, 0, SECOND // 2),
        (TWO_PER_SECOND, None, 0, 2, True, 0, 0, SECOND),
        (TWO_PER_SECOND, None, 0, 3, False, 2, NEVER, 0),
        # Empty at t=0 (tat = 1 s): the next token is 500 ms away.
        (TWO_PER_SECOND, SECOND, 0, 1, False, 0, SECOND // 2, SECOND),
        (TWO_PER_SECOND, SECOND, SECOND // 2 - 1, 1, False, 0, 1, SECOND // 2 + 1),
        (TWO_PER_SECOND, SECOND, SECOND // 2, 1, True, 0, 0, SECOND),
        (TWO_PER_SECOND, SECOND, 0, 2, False, 0, SECOND, SECOND),
        # Long idle: refill stops at the burst.
        (TWO_PER_SECOND, SECOND, 100 * SECOND, 2, True, 0, 0, SECOND),
        # Burst above the rate.
        (BURSTY, None, 0, 3, True, 0, 0, 3 * SECOND),
        (BURSTY, 3 * SECOND, 0, 1, False, 0, SECOND, 3 * SECOND),
        (BURSTY, 3 * SECOND, SECOND, 1, True, 0, 0, 3 * SECOND),
        (BURSTY, 3 * SECOND, 2 * SECOND, 2, True, 0, 0, 3 * SECOND),
        (BURSTY, 3 * SECOND, 2 * SECOND, 3, False, 2, SECOND, SECOND),
    ],
)
def test_evaluate_at_fixed_instants(
    limit: Limit,
    tat: int | None,
    now: int,
    cost: int,
    allowed: bool,
    remaining: int,
    retry_ns: int,
    reset_ns: int,
) -> None:
    units = limit.units_per_ns
    step = evaluate(limit, None if tat is None else tat * units, now, cost)
    assert (step.allowed, step.remaining, step.retry_ns, step.reset_ns) == (
        allowed,
        remaining,
        retry_ns,
        reset_ns,
    )


def test_fractions_of_a_token_carry_over() -> None:
    # 7 per 30 s: one token every 4.2857142857... s. Taking a token every
    # 4.2857142857 s (rounded down to whole ns) must run out eventually, and
    # taking one every 4.2857142858 s must never.
    interval_down = 30 * SECOND // 7
    tat = None
    now = 0
    for _ in range(7):  # drain the burst
        step = evaluate(SEVEN_PER_30S, tat, now, 1)
        tat = step.tat
    assert evaluate(SEVEN_PER_30S, tat, now, 1).allowed is False
    allowed_down = 0
    for _ in range(100):
        now += interval_down
        step = evaluate(SEVEN_PER_30S, tat, now, 1)
        if step.allowed:
            tat = step.tat
            allowed_down += 1
    assert allowed_down < 100  # 100 x 4/7 ns short adds up: one call is refused

    tat, now = None, 0
    for _ in range(7):
        tat = evaluate(SEVEN_PER_30S, tat, now, 1).tat
    for _ in range(1000):
        now += interval_down + 1
        step = evaluate(SEVEN_PER_30S, tat, now, 1)
        assert step.allowed
        tat = step.tat


def test_retry_after_is_enough_to_succeed() -> None:
    tat = evaluate(SEVEN_PER_30S, None, 0, 7).tat
    denied = evaluate(SEVEN_PER_30S, tat, 0, 3)
    assert not denied.allowed
    assert not evaluate(SEVEN_PER_30S, tat, denied.retry_ns - 1, 3).allowed
    assert evaluate(SEVEN_PER_30S, tat, denied.retry_ns, 3).allowed


def test_time_running_backwards_gives_no_tokens() -> None:
    tat = evaluate(TWO_PER_SECOND, None, 10 * SECOND, 2).tat
    assert not evaluate(TWO_PER_SECOND, tat, 5 * SECOND, 1).allowed


def test_refund_caps_at_full_and_is_full() -> None:
    units = TWO_PER_SECOND.units_per_ns
    tat = evaluate(TWO_PER_SECOND, None, 0, 2).tat
    half = refunded(TWO_PER_SECOND, tat, 0, 1)
    assert half == SECOND // 2 * units
    assert refunded(TWO_PER_SECOND, tat, 0, 5) is None
    assert refunded(TWO_PER_SECOND, None, 0, 1) is None
    assert is_full(TWO_PER_SECOND, tat, SECOND)
    assert not is_full(TWO_PER_SECOND, tat, SECOND - 1)


def test_a_clock_step_back_counts_the_bucket_as_empty_never_beyond() -> None:
    tat = evaluate(TWO_PER_SECOND, None, 10 * SECOND, 2).tat  # empty at t=10 s
    step = evaluate(TWO_PER_SECOND, tat, 0, 1)  # the clock jumped back 10 s
    assert not step.allowed
    assert step.remaining == 0
    assert step.retry_ns == SECOND // 2  # no longer than from an empty bucket
    assert step.reset_ns == SECOND


def test_refund_after_a_clock_step_back_starts_from_an_empty_bucket() -> None:
    tat = evaluate(TWO_PER_SECOND, None, 10 * SECOND, 2).tat
    after = refunded(TWO_PER_SECOND, tat, 0, 1)
    assert after == SECOND // 2 * TWO_PER_SECOND.units_per_ns
