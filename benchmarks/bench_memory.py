"""pytest-benchmark suite for the memory path: ``pytest benchmarks --benchmark-enable``."""

from __future__ import annotations

import itertools

import pytest

from bucketcore import Limit, Limiter
from bucketcore.memory import PURE_PYTHON_VARIABLE

ALWAYS = Limit(10**7, 1.0, burst=10**12)
NEVER_AGAIN = Limit(1, 86400.0)


@pytest.fixture
def limiter() -> Limiter:
    return Limiter("memory://")


@pytest.mark.benchmark(group="memory: one hot key, allowed")
def test_try_acquire_hot_key(benchmark, limiter: Limiter) -> None:  # type: ignore[no-untyped-def]
    benchmark(limiter.try_acquire, "hot", ALWAYS)


@pytest.mark.benchmark(group="memory: one hot key, allowed")
def test_acquire_hot_key(benchmark, limiter: Limiter) -> None:  # type: ignore[no-untyped-def]
    benchmark(limiter.acquire, "hot", ALWAYS)


@pytest.mark.benchmark(group="memory: one hot key, allowed")
def test_peek_hot_key(benchmark, limiter: Limiter) -> None:  # type: ignore[no-untyped-def]
    benchmark(limiter.peek, "hot", ALWAYS)


@pytest.mark.benchmark(group="memory: one hot key, denied")
def test_acquire_denied(benchmark, limiter: Limiter) -> None:  # type: ignore[no-untyped-def]
    limiter.acquire("spent", NEVER_AGAIN)
    benchmark(limiter.acquire, "spent", NEVER_AGAIN)


@pytest.mark.benchmark(group="memory: 100k keys round-robin")
def test_try_acquire_100k_keys(benchmark, limiter: Limiter) -> None:  # type: ignore[no-untyped-def]
    keys = itertools.cycle([f"user-{i}" for i in range(100_000)])
    benchmark(lambda: limiter.try_acquire(next(keys), ALWAYS))


@pytest.mark.benchmark(group="memory: two limits")
def test_acquire_two_limits(benchmark, limiter: Limiter) -> None:  # type: ignore[no-untyped-def]
    per_day = Limit(10**11, 86400.0)
    benchmark(limiter.acquire, "hot", ALWAYS, per_day)


@pytest.mark.benchmark(group="memory: two limits")
def test_acquire_one_limit_for_reference(benchmark, limiter: Limiter) -> None:  # type: ignore[no-untyped-def]
    benchmark(limiter.acquire, "hot", ALWAYS)


@pytest.mark.benchmark(group="memory: two limits")
def test_acquire_two_limits_pure_python(benchmark, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(PURE_PYTHON_VARIABLE, "1")
    pure = Limiter("memory://")
    benchmark(pure.acquire, "hot", ALWAYS, Limit(10**11, 86400.0))
