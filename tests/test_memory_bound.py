"""Memory stays bounded: full buckets are dropped lazily, live ones never."""

from __future__ import annotations

import pytest

from bucketcore import Limit, Limiter
from bucketcore.memory import PURE_PYTHON_VARIABLE, MemoryStore, fast_path_available
from tests.conftest import FakeClock


def test_a_million_one_off_keys_do_not_stay_resident() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    limiter = Limiter(store)
    per_millisecond = Limit(1, 0.001)  # a bucket refills within 1 ms
    vip = Limit(1, 3600.0)
    assert limiter.acquire("vip", vip).allowed

    peak = 0
    for index in range(1_000_000):
        clock.advance(ns=100)  # 10,000 keys per millisecond of fake time
        assert limiter.try_acquire(f"visitor-{index}", per_millisecond)
        if index % 10_000 == 0:
            peak = max(peak, len(store))
    # While churning, the table holds the last millisecond's keys plus the
    # sweep's lag: a bounded multiple of the live set, not the million.
    assert peak < 100_000

    clock.advance(1.0)
    for index in range(1_000):
        limiter.try_acquire(f"late-{index}", per_millisecond)
    assert len(store) < 10_000
    # No live bucket was reset along the way.
    assert not limiter.acquire("vip", vip).allowed


def test_a_bucket_that_is_not_full_is_never_dropped() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    limiter = Limiter(store)
    slow = Limit(10, 86400.0)
    for index in range(2_000):
        limiter.acquire(f"user-{index}", slow, cost=10)
    for index in range(20_000):
        clock.advance(ns=1_000)
        limiter.try_acquire(f"churn-{index}", Limit(1, 0.000_001))
    assert len(store) >= 2_000
    assert not any(limiter.try_acquire(f"user-{index}", slow) for index in range(2_000))


@pytest.mark.parametrize("pure_python", [False, True], ids=["c", "python"])
@pytest.mark.parametrize("call", ["try_acquire", "acquire", "peek"])
def test_a_spike_is_released_by_steady_traffic_that_creates_no_buckets(
    monkeypatch: pytest.MonkeyPatch, pure_python: bool, call: str
) -> None:
    """300k one-off keys go idle; then only a few known keys are used (issue 17)."""
    if pure_python:
        monkeypatch.setenv(PURE_PYTHON_VARIABLE, "1")
    elif not fast_path_available():
        pytest.skip("the C module was not built")
    clock = FakeClock()
    store = MemoryStore(clock=clock)
    limiter = Limiter(store)
    steady = Limit(1_000_000, 1.0)
    for index in range(100):  # the steady keys exist before the spike
        assert limiter.try_acquire(f"steady-{index}", steady)
    spike = Limit(1, 1.0)
    for index in range(300_000):
        assert limiter.try_acquire(f"spike-{index}", spike)
    assert len(store) > 250_000  # the spike's buckets are not full yet
    clock.advance(2.0)  # every spike bucket is full now; no call creates a bucket below
    decide = getattr(limiter, call)
    for index in range(100_000):
        decide(f"steady-{index % 100}", steady)
    assert len(store) <= 1_000
