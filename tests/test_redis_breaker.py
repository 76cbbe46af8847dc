"""The circuit breaker's rules at fixed instants (backends/redis/breaker.py), no server.

The same breaker guards RedisStore and AsyncRedisStore; tests/test_redis_faults.py
drives it through a real broken network.
"""

from __future__ import annotations

import logging

import pytest

from bucketcore.backends.redis.breaker import CLOSED, PROBE, REFUSED, Breaker
from bucketcore.backends.redis.options import Settings
from bucketcore.backends.redis.policy import FailurePolicy, breaker_for
from bucketcore.errors import ConfigurationError, StoreUnavailable
from bucketcore.limit import Limit

from .conftest import FakeClock

DOWN = StoreUnavailable("Redis is unavailable: refused")


def _breaker(clock: FakeClock, jitter: float = 0.0, **kwargs: object) -> Breaker:
    return Breaker(0.5, 4.0, clock=clock, random=lambda: jitter, **kwargs)  # type: ignore[arg-type]


def test_a_failure_opens_it_and_calls_are_refused_until_the_cool_down(clock: FakeClock) -> None:
    breaker = _breaker(clock)
    assert breaker.admit() == CLOSED
    breaker.failed(CLOSED, DOWN)
    assert breaker.is_open
    assert breaker.admit() == REFUSED
    assert breaker.refuses()
    clock.advance(0.499)
    assert breaker.admit() == REFUSED
    clock.advance(0.001)
    assert not breaker.refuses()
    assert breaker.admit() == PROBE


def test_one_probe_at_a_time(clock: FakeClock) -> None:
    breaker = _breaker(clock)
    breaker.failed(CLOSED, DOWN)
    clock.advance(1.0)
    assert [breaker.admit() for _ in range(3)] == [PROBE, REFUSED, REFUSED]
    breaker.succeeded(PROBE)
    assert not breaker.is_open
    assert [breaker.admit() for _ in range(3)] == [CLOSED] * 3


def test_each_failed_probe_doubles_the_wait_up_to_the_maximum(clock: FakeClock) -> None:
    breaker = _breaker(clock)
    breaker.failed(CLOSED, DOWN)
    clock.advance(0.5)
    for wait in [1.0, 2.0, 4.0, 4.0, 4.0]:
        assert breaker.admit() == PROBE
        breaker.failed(PROBE, DOWN)
        clock.advance(wait - 1e-9)
        assert breaker.admit() == REFUSED
        clock.advance(ns=1)
    breaker.succeeded(breaker.admit())
    breaker.failed(CLOSED, DOWN)  # a new outage starts from the first cool-down again
    clock.advance(0.5)
    assert breaker.admit() == PROBE


def test_jitter_stretches_the_wait_by_at_most_a_quarter(clock: FakeClock) -> None:
    breaker = _breaker(clock, jitter=0.999)
    breaker.failed(CLOSED, DOWN)
    clock.advance(0.6)
    assert breaker.admit() == REFUSED  # 0.5 s stretched to ~0.625 s
    clock.advance(0.025)
    assert breaker.admit() == PROBE


def test_a_call_in_flight_when_it_opened_does_not_close_it(clock: FakeClock) -> None:
    breaker = _breaker(clock)
    first, second = breaker.admit(), breaker.admit()
    breaker.failed(first, DOWN)
    breaker.succeeded(second)  # sent before the outage was noticed
    assert breaker.is_open
    breaker.failed(second, DOWN)  # nor does a second failure reopen or log it
    assert breaker.admit() == REFUSED


def test_an_abandoned_probe_lets_the_next_caller_probe(clock: FakeClock) -> None:
    breaker = _breaker(clock)
    breaker.failed(CLOSED, DOWN)
    clock.advance(1.0)
    assert breaker.admit() == PROBE
    breaker.abandoned(PROBE)  # e.g. its task was cancelled
    assert breaker.admit() == PROBE


def test_a_zero_cool_down_sends_every_call_and_logs_the_outage_once(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    breaker = Breaker(0.0, 0.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="bucketcore.redis"):
        breaker.failed(breaker.admit(), DOWN)
        assert [breaker.admit() for _ in range(3)] == [PROBE] * 3
        breaker.failed(PROBE, DOWN)
        breaker.succeeded(PROBE)
        breaker.succeeded(PROBE)
    assert not breaker.is_open
    assert [record.getMessage()[:20] for record in caplog.records] == [
        "Redis is unavailable",
        "Redis is reachable a",
    ]


def test_the_hook_hears_the_outage_and_the_recovery_once(clock: FakeClock) -> None:
    heard: list[tuple[str, StoreUnavailable | None]] = []
    breaker = _breaker(clock, on_change=lambda state, error: heard.append((state, error)))
    breaker.failed(CLOSED, DOWN)
    breaker.failed(CLOSED, DOWN)
    clock.advance(1.0)
    breaker.succeeded(breaker.admit())
    breaker.succeeded(breaker.admit())
    assert heard == [("open", DOWN), ("closed", None)]


def test_a_hook_that_raises_is_logged_not_raised(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(state: str, error: StoreUnavailable | None) -> None:
        raise RuntimeError("hook bug")

    breaker = _breaker(clock, on_change=broken)
    with caplog.at_level(logging.ERROR, logger="bucketcore.redis"):
        breaker.failed(CLOSED, DOWN)
    assert any("on_breaker" in record.getMessage() for record in caplog.records)


def test_a_refusal_is_caused_by_what_opened_it(clock: FakeClock) -> None:
    cause = OSError("reset")
    error = StoreUnavailable("Redis is unavailable: reset")
    error.__cause__ = cause
    breaker = _breaker(clock)
    breaker.failed(CLOSED, error)
    refusal = breaker.refusal()
    assert isinstance(refusal, StoreUnavailable)
    assert refusal.__cause__ is cause
    assert "not sent" in str(refusal)


def test_recovery_drops_the_local_buckets() -> None:
    policy = FailurePolicy("local")
    limit = Limit(1, 3600.0)
    breaker = breaker_for(Settings({"on_error": "local", "breaker_cooldown": 0}), policy)
    breaker.failed(CLOSED, DOWN)
    assert policy.degraded("k", (limit,), 1, DOWN).allowed
    assert not policy.degraded("k", (limit,), 1, DOWN).allowed
    breaker.succeeded(breaker.admit())
    assert policy.degraded("k", (limit,), 1, DOWN).allowed  # the next outage starts full


@pytest.mark.parametrize(
    "options",
    [
        {"breaker_cooldown": -1},
        {"breaker_cooldown": "soon"},
        {"breaker_cooldown": 2, "breaker_max_cooldown": 1},
        {"on_breaker": "print"},
        {"on_error": "sometimes"},
    ],
)
def test_bad_breaker_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        Settings(options)
