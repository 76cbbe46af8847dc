"""A monotonic clock that steps back leaves a bucket empty, never beyond empty.

Whoever waits the ``retry_after`` a denial reported then succeeds, on every
store the tests can drive with a fake clock (Redis reads the server's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bucketcore import Limit, Limiter
from bucketcore.memory import PURE_PYTHON_VARIABLE, MemoryStore
from tests.conftest import FakeClock


def _memory(clock: FakeClock, tmp_path: Path) -> Limiter:
    return Limiter(MemoryStore(clock=clock))


def _memory_pure_python(clock: FakeClock, tmp_path: Path) -> Limiter:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PURE_PYTHON_VARIABLE, "1")
        return Limiter(MemoryStore(clock=clock))


def _rocksdb(durability: str) -> Callable[[FakeClock, Path], Limiter]:
    def make(clock: FakeClock, tmp_path: Path) -> Limiter:
        from bucketcore.backends.rocksdb import RocksDBStore

        return Limiter(RocksDBStore(tmp_path / "db", durability=durability, clock=clock))

    return make


STORES = {
    "memory": _memory,
    "memory-python": _memory_pure_python,
    "rocksdb-wal": _rocksdb("wal"),
    "rocksdb-sync": _rocksdb("sync"),
    "rocksdb-periodic": _rocksdb("periodic"),
}


@pytest.fixture(params=sorted(STORES))
def stepped(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Limiter, FakeClock]]:
    clock = FakeClock(start_ns=100 * 10**9)
    limiter = STORES[request.param](clock, tmp_path)
    try:
        yield limiter, clock
    finally:
        limiter.close()


@pytest.mark.parametrize("ask", ["acquire", "try_acquire"])
def test_waiting_the_reported_retry_after_a_step_back_succeeds(
    stepped: tuple[Limiter, FakeClock], ask: str
) -> None:
    limiter, clock = stepped
    limit = Limit(2, 1.0)  # a token every 500 ms
    assert limiter.acquire("k", limit, cost=2).allowed  # empty now
    clock.now_ns -= 10 * 10**9  # the clock jumps back 10 s
    if ask == "try_acquire":
        assert not limiter.try_acquire("k", limit)
    denied = limiter.acquire("k", limit)
    assert not denied.allowed
    assert denied.retry_after <= 0.5000001  # no longer than from an empty bucket
    clock.advance(denied.retry_after)
    assert limiter.acquire("k", limit).allowed
