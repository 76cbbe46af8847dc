"""lmdb://'s inlined single-limit step (``LMDBStore._one``) against its general path.

The general path decides through ``bucketcore._gcra``; the inlined copy must
give the same answers and leave the same records, call by call, at fixed
instants (docs/design.md §7).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bucketcore import Limit, Limiter
from bucketcore.backends.lmdb import LMDBStore
from tests.conftest import FakeClock

SECOND = 1_000_000_000
BOOT = b"h" * 16
LIMITS = [
    Limit(3, 1.0),
    Limit(7, 30.0, burst=2),
    Limit(2, 3.0, burst=5),
    Limit(10**7, 1.0),
    Limit(1, 86400.0, name="daily"),
]


def _store(path: Path, clock: FakeClock) -> LMDBStore:
    return LMDBStore(path, clock=clock, wall_clock=lambda: 10**18, boot=BOOT)


def _records(store: LMDBStore) -> list[tuple[bytes, bytes]]:
    with store._env.handle().begin() as txn:
        return [(bytes(key), bytes(value)) for key, value in txn.cursor() if key[:1] == b"\x01"]


@pytest.mark.parametrize("limit", LIMITS, ids=lambda limit: limit.identity)
def test_the_inlined_step_decides_like_the_general_path(tmp_path: Path, limit: Limit) -> None:
    rng = random.Random(limit.identity)
    inline_clock, general_clock = FakeClock(), FakeClock()
    inline = _store(tmp_path / "inline", inline_clock)
    general = _store(tmp_path / "general", general_clock)
    for _ in range(400):
        step = rng.choice([0, 0, 1, 333_333_333, SECOND, 7 * SECOND, 3600 * SECOND])
        inline_clock.advance(ns=step)
        general_clock.advance(ns=step)
        key = rng.choice(["alice", "bob", b"carol"])
        cost = rng.choice([1, 1, 1, 2, 3, 6])
        want = general._acquire(key, (limit,), cost)
        wants_decision = rng.random() < 0.5
        got = inline._one(key, limit, cost, wants_decision)
        if got is None:  # only a full bucket asked for more than its burst goes back
            assert cost > limit.burst
            decision = inline._acquire(key, (limit,), cost)
            got = decision if wants_decision else decision.allowed
        assert got == (want if wants_decision else want.allowed)
        assert _records(inline) == _records(general)
    inline.close()
    general.close()


def test_the_limiter_uses_the_checked_calls(tmp_path: Path) -> None:
    with Limiter(f"lmdb://{tmp_path}/l") as limiter:
        store = limiter.store
        assert isinstance(store, LMDBStore)
        assert limiter.acquire == store.checked_acquire
        assert limiter.try_acquire == store.checked_try_acquire
        assert limiter.peek == store.checked_peek


def test_a_clock_step_back_is_clamped_on_the_general_path(tmp_path: Path) -> None:
    clock = FakeClock()
    store = _store(tmp_path / "l", clock)
    limit = Limit(1, 10.0)
    assert store._one("k", limit, 1, True)
    clock.advance(-100.0)  # the record is now far more than an empty bucket ahead
    assert store._one("k", limit, 1, False) is None
    denied = store.checked_acquire("k", limit)
    assert not denied.allowed
    empty = store.checked_peek("fresh", limit, cost=2)  # cost 2 > burst: never
    assert denied.retry_after <= store.checked_acquire("other", limit).reset_after
    assert empty.retry_after == float("inf")
    store.close()


@pytest.mark.parametrize(
    ("key", "limits", "cost"),
    [("é", (Limit(1, 1.0),), 1), ("k", (Limit(1, 1.0), Limit(5, 60.0)), 1), ("k", (), 1)],
)
def test_unusual_calls_are_validated_and_decided_like_the_limiter_does(
    tmp_path: Path, key: str, limits: tuple[Limit, ...], cost: int
) -> None:
    store = _store(tmp_path / "l", FakeClock())
    if not limits:
        with pytest.raises(Exception, match="Limit"):
            store.checked_acquire(key, *limits, cost=cost)
    else:
        assert store.checked_try_acquire(key, *limits, cost=cost)
        assert not store.checked_acquire(key, *limits, cost=cost).allowed
    store.close()
