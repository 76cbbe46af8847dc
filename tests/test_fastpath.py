"""The C fast path (bucketcore/_fastpath.c) decides exactly what the Python path does.

Two MemoryStores on one fake clock, one answering in C and one in pure
Python, get the same calls; every answer and every stored state must agree.
"""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bucketcore import Limit, Limiter
from bucketcore.errors import BucketError
from bucketcore.memory import PURE_PYTHON_VARIABLE, MemoryStore, fast_path_available
from tests.conftest import IN_CI, FakeClock
from tests.strategies import limits

needs_fast_path = pytest.mark.skipif(
    not fast_path_available() and not IN_CI,
    reason="bucketcore._fastpath was not built (no C compiler?)",
)


def pure_store(monkeypatch: pytest.MonkeyPatch, clock: Callable[[], int]) -> MemoryStore:
    with monkeypatch.context() as patch:
        patch.setenv(PURE_PYTHON_VARIABLE, "1")
        return MemoryStore(clock=clock)


def test_the_fast_path_is_built_where_the_tests_run_in_ci() -> None:
    if IN_CI:  # CI has a compiler: a silently skipped build would test nothing here
        assert fast_path_available()
    assert fast_path_available() == (type(MemoryStore().checked_try_acquire).__name__ != "method")


def test_the_environment_variable_switches_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    store = pure_store(monkeypatch, FakeClock())
    assert type(store.checked_try_acquire).__name__ == "method"
    assert type(Limiter(store).try_acquire).__name__ == "method"


@needs_fast_path
def test_a_dropped_store_is_collected() -> None:
    # The store holds its C path, which holds the store's methods: a cycle
    # only the garbage collector can break, if the C type lets it see it.
    store = MemoryStore()
    store.checked_try_acquire("k", Limit(1, 1))
    gone = weakref.ref(store)
    del store
    gc.collect()
    assert gone() is None


# -- the same answers ----------------------------------------------------------------


def _limits() -> st.SearchStrategy[Limit]:
    """Limits across the supported range, some named (shared pools)."""
    return limits(names=("general", "special"))


KEYS = st.sampled_from(["alice", "bob", "é-non-ascii", b"bytes-key", "x" * 4096])
STEPS = st.one_of(
    st.just(0),
    st.integers(1, 10**6),
    st.integers(1, 10**12),
    st.integers(-(10**10), -1),  # a clock stepping back: the clamp must agree too
    st.integers(1, 10**17),  # years at once
)
OPS = st.sampled_from(
    [
        "acquire",
        "try_acquire",
        "acquire_cost",
        "two",
        "three",
        "twice",
        "peek",
        "refund",
        "reset",
        "drain",
    ]
)
COSTS = st.one_of(st.integers(1, 12), st.integers(1, 10**12))


def _states(store: Any) -> dict[str, dict[Any, int]]:
    memory = getattr(store, "_memory", store)  # a RocksDBStore composes a MemoryStore
    return {
        identity: {key: bucket[0] for key, bucket in table.items()}
        for identity, table in memory._tables.items()
    }


def _call(store: MemoryStore, op: str, key: Any, limits: list[Limit], cost: int) -> object:
    try:
        if op == "acquire":
            return store.checked_acquire(key, limits[0])
        if op == "try_acquire":
            return store.checked_try_acquire(key, limits[0], cost=cost)
        if op == "acquire_cost":
            return store.checked_acquire(key, limits[0], cost=cost)
        if op == "two":
            return store.checked_acquire(key, limits[0], limits[1], cost=cost)
        if op == "three":  # in another order: the binding limit's ties go to the first
            return store.checked_try_acquire(key, limits[2], limits[0], limits[1], cost=cost), (
                store.checked_acquire(key, limits[1], limits[2], limits[0], cost=cost)
            )
        if op == "twice":  # the same limit twice is an error
            return store.checked_acquire(key, limits[0], limits[0])
        if op == "peek":
            return store.checked_peek(key, limits[0], cost=cost), store.checked_peek(
                key, limits[1], limits[2], limits[0], cost=cost
            )
        if op == "refund":
            return store.refund(key, tuple(limits), cost)
        if op == "drain":  # held buckets: C hands them to Python
            return store.drain(key, tuple(limits[:2]), cost * 1_000_000)
        return store.reset(key, tuple(limits))
    except BucketError as exc:  # a name reused with another rate, a record out of range
        return (type(exc), str(exc).replace(str(getattr(store, "path", "")), "<path>"))


@needs_fast_path
@settings(max_examples=400, deadline=None)
@given(
    limits=st.lists(_limits(), min_size=3, max_size=3),
    start_ns=st.one_of(st.just(0), st.integers(1, 10**15), st.integers(10**17, 2**62)),
    script=st.lists(st.tuples(STEPS, OPS, KEYS, COSTS), max_size=40),
)
def test_c_and_python_paths_agree(
    limits: list[Limit], start_ns: int, script: list[tuple[int, str, Any, int]]
) -> None:
    clock = FakeClock(start_ns=start_ns)
    fast = MemoryStore(clock=clock)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PURE_PYTHON_VARIABLE, "1")
        pure = MemoryStore(clock=clock)
    for step_ns, op, key, cost in script:
        clock.advance(ns=step_ns)
        assert _call(fast, op, key, limits, cost) == _call(pure, op, key, limits, cost)
        assert _states(fast) == _states(pure)


@needs_fast_path
def test_values_beyond_64_bits_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    # burst * token_units and now * units_per_ns pass 2**64 at the edges of
    # the supported range (a rate with no common factor with its period).
    clock = FakeClock(start_ns=2**62)
    fast = MemoryStore(clock=clock)
    pure = pure_store(monkeypatch, clock)
    edges = (Limit(999_999_999_989, 100_000.0, burst=10**12), Limit(32, 31_536_000.0))
    for limit in edges:
        for cost in (1, 10**11, limit.burst, (limit.burst or 0) + 1):
            assert fast.checked_acquire("k", limit, cost=cost) == pure.checked_acquire(
                "k", limit, cost=cost
            )
            assert _states(fast) == _states(pure)
            clock.advance(ns=10**15)


@needs_fast_path
def test_several_limits_agree_while_the_sweep_drops_full_buckets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Creating the first limit's bucket may sweep away the second's (full)
    # one in the same call: it must be created again, not updated in limbo.
    clock = FakeClock()
    fast, pure = MemoryStore(clock=clock), pure_store(monkeypatch, clock)
    quick = Limit(10**6, 1.0, burst=10)  # full again within 10 us
    slow = Limit(1, 3600.0, burst=5)
    keys = [f"user-{i}" for i in range(500)]
    for key in keys:
        assert fast.checked_acquire(key, quick) == pure.checked_acquire(key, quick)
    clock.advance(1.0)  # every quick bucket is full (and may be swept) now
    for key in keys:
        assert fast.checked_acquire(key, slow, quick, cost=2) == pure.checked_acquire(
            key, slow, quick, cost=2
        )
        assert fast.checked_try_acquire(key, quick, slow, cost=4) is pure.checked_try_acquire(
            key, quick, slow, cost=4
        )
    assert _states(fast) == _states(pure)
    assert len(fast._tables[quick.identity]) == len(keys)


@pytest.mark.parametrize("cost", [1, 3, 9])  # allowed, denied, never
def test_a_tie_for_the_binding_limit_goes_to_the_first_given(cost: int) -> None:
    first, second = Limit(3, 1.0, name="first"), Limit(3, 1.0, name="second")
    store = MemoryStore(clock=FakeClock())
    assert store.checked_acquire("k", first, second, cost=cost).limit is first
    assert store.checked_acquire("j", second, first, cost=cost).limit is second


# -- errors and odd calls are the Python path's --------------------------------------


def _outcome(call: Any, *args: Any, **kwargs: Any) -> object:
    try:
        return call(*args, **kwargs)
    except Exception as exc:
        return (type(exc), str(exc))


@needs_fast_path
@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("k", Limit(1, 1)), {"cost": 0}),
        (("k", Limit(1, 1)), {"cost": True}),
        (("k", Limit(1, 1)), {"cost": 1.0}),
        (("k", Limit(1, 1)), {"cost": 2**70}),
        (("k", Limit(5, 1)), {"cost": 5}),
        (("k" * 4097, Limit(1, 1)), {}),
        ((7, Limit(1, 1)), {}),
        ((b"k", Limit(1, 1)), {}),
        (("\udc80", Limit(1, 1)), {}),
        (("k",), {}),
        (("k", "1/s"), {}),
        (("k", Limit(1, 1), Limit(2, 1)), {}),
        (("k", Limit(1, 1), Limit(1, 1)), {}),
        (("k", Limit(1, 1, name="a"), Limit(2, 1, name="a")), {}),
        (("k", *(Limit(n, 1) for n in range(1, 10))), {}),  # more than C takes
        (("k", Limit(1, 1), "1/s"), {}),
    ],
)
def test_odd_and_bad_calls_are_answered_as_the_python_path_does(
    args: tuple[Any, ...], kwargs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    pure, fast = pure_store(monkeypatch, clock), MemoryStore(clock=clock)
    for method in ("checked_try_acquire", "checked_acquire", "checked_peek"):
        expected = _outcome(getattr(pure, method), *args, **kwargs)
        assert _outcome(getattr(fast, method), *args, **kwargs) == expected


@needs_fast_path
def test_an_unknown_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="weight"):
        MemoryStore().checked_try_acquire("k", Limit(1, 1), weight=1)  # type: ignore[call-arg]


@needs_fast_path
def test_a_plan_changed_under_c_is_converted_and_then_decided_in_c() -> None:
    store = MemoryStore(clock=FakeClock())
    assert store.checked_acquire("k", Limit(7, 30, name="general")).remaining == 6
    assert store.checked_acquire("k", Limit(7, 30, name="general")).remaining == 5
    upgraded = Limit(70, 30, name="general")
    assert store.checked_acquire("k", upgraded).remaining == 4  # 5 held carry over
    assert store._tables["n:general"]["k"][1] is upgraded  # C takes it from now on
    assert store.checked_acquire("k", upgraded).remaining == 3


@needs_fast_path
def test_an_error_from_the_clock_propagates_and_releases_the_lock() -> None:
    calls = 0

    def clock() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("clock broke")
        return 10**12

    store = MemoryStore(clock=clock)
    with pytest.raises(RuntimeError, match="clock broke"):
        store.checked_try_acquire("k", Limit(1, 1))
    assert store.checked_try_acquire("k", Limit(1, 1)) is True  # the lock was released


@needs_fast_path
def test_a_clock_that_returns_no_int_is_left_to_python(monkeypatch: pytest.MonkeyPatch) -> None:
    def clock() -> int:
        return 10**12 + 0.5  # type: ignore[return-value]

    fast = MemoryStore(clock=clock)
    pure = pure_store(monkeypatch, clock)  # type: ignore[arg-type]
    for _ in range(3):
        assert fast.checked_acquire("k", Limit(2, 1)) == pure.checked_acquire("k", Limit(2, 1))


# -- one lock for both paths -----------------------------------------------------------


@needs_fast_path
@pytest.mark.usefixtures("switch_threads_constantly")
@pytest.mark.parametrize("round_", range(5))
def test_c_and_python_callers_of_one_bucket_share_its_lock(round_: int) -> None:
    # str keys go through C, the same key as bytes through Python; a C call
    # that slipped between the Python path's read and write would be lost and
    # grant more than the burst. The clock is Python code, so C calls also
    # give up the GIL in the middle of their own read-modify-write.
    now = [10**12]
    limiter = Limiter(clock=lambda: now[0])
    shared = Limit(3000, 365 * 86400.0)
    roomy = Limit(10**6, 365 * 86400.0)
    granted = [0] * 8
    start = threading.Barrier(8)

    def worker(index: int) -> None:
        start.wait()
        key = "k" if index % 2 else b"k"
        limits = (shared,) if index % 4 < 2 else (shared, roomy)
        granted[index] = sum(limiter.try_acquire(key, *limits) for _ in range(800))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 3000


# -- rocksdb:// in wal mode: the same records -----------------------------------------


def _rocksdb_store(path: Path, clocks: list[int], pure: bool) -> Any:
    from bucketcore.backends.rocksdb import RocksDBStore

    with pytest.MonkeyPatch.context() as patch:
        if pure:
            patch.setenv(PURE_PYTHON_VARIABLE, "1")
        return RocksDBStore(path, clock=lambda: clocks[0], wall_clock=lambda: clocks[1])


def _records(store: Any) -> dict[bytes, bytes]:
    return {key: value for key, value in store._persistence.db.items() if key[:1] == b"\x01"}


@needs_fast_path
@settings(max_examples=60, deadline=None)
@given(
    limits=st.lists(_limits(), min_size=3, max_size=3),
    # A monotonic clock may read below zero (its origin is arbitrary): the
    # record's divmod must then round down, as Python's does.
    start_ns=st.sampled_from([-(10**13) - 1, 0, 10**15]),
    script=st.lists(st.tuples(STEPS, OPS, KEYS, COSTS), max_size=25),
)
def test_c_and_python_paths_write_the_same_records(
    tmp_path_factory: pytest.TempPathFactory,
    limits: list[Limit],
    start_ns: int,
    script: list[tuple[int, str, Any, int]],
) -> None:
    directory = tmp_path_factory.mktemp("rocksdb")
    clocks = [start_ns, 1_700_000_000 * 10**9]  # monotonic, wall
    fast = _rocksdb_store(directory / "fast", clocks, pure=False)
    pure = _rocksdb_store(directory / "pure", clocks, pure=True)
    assert fast._memory._fast is not None
    assert pure._memory._fast is None
    try:
        for step_ns, op, key, cost in script:
            clocks[0] += step_ns
            clocks[1] += abs(step_ns)
            assert _call(fast, op, key, limits, cost) == _call(pure, op, key, limits, cost)
            assert _states(fast) == _states(pure)
            assert _records(fast) == _records(pure)
    finally:
        fast.close()
        pure.close()


@needs_fast_path
def test_a_clock_below_zero_writes_the_same_records(tmp_path: Path) -> None:
    clocks = [-(10**13) - 1, 1_700_000_000 * 10**9]  # the record's divmod rounds down
    fast = _rocksdb_store(tmp_path / "fast", clocks, pure=False)
    pure = _rocksdb_store(tmp_path / "pure", clocks, pure=True)
    try:
        for _ in range(3):  # the first call creates the bucket, the others are C's
            assert fast.checked_acquire("k", Limit(7, 30)) == pure.checked_acquire(
                "k", Limit(7, 30)
            )
            assert _records(fast) == _records(pure)
    finally:
        fast.close()
        pure.close()


@needs_fast_path
def test_a_failed_write_is_reported_by_the_python_path_and_changes_nothing(
    tmp_path: Path,
) -> None:
    from bucketcore.errors import StoreError

    clocks = [10**15, 1_700_000_000 * 10**9]
    store = _rocksdb_store(tmp_path / "db", clocks, pure=False)
    limit = Limit(5, 1)
    assert store.checked_acquire("k", limit).remaining == 4  # resident now
    before = _states(store)
    store._persistence.db.close()  # every put fails from here on
    with pytest.raises(StoreError, match="write"):
        store.checked_acquire("k", limit)
    assert _states(store) == before


@needs_fast_path
def test_a_closed_store_refuses_the_c_path_too(tmp_path: Path) -> None:
    from bucketcore.errors import StoreClosed

    clocks = [10**15, 1_700_000_000 * 10**9]
    store = _rocksdb_store(tmp_path / "db", clocks, pure=False)
    decide = store.checked_try_acquire  # what a Limiter would hold
    assert decide("k", Limit(5, 1)) is True
    store.close()
    for limit in (Limit(5, 1), Limit(1, 86400)):
        with pytest.raises(StoreClosed):
            decide("k", limit)


@needs_fast_path
@pytest.mark.parametrize("limit", [Limit(7, 30), Limit(3, 1.0, burst=5), Limit(10**7, 1.0)])
def test_c_writes_the_record_records_encode_writes(tmp_path: Path, limit: Limit) -> None:
    # The C copy of the record layout (bucketcore/_fastpath.c) against the one
    # place that states it (backends/rocksdb/records.py), byte for byte.
    from bucketcore.backends.rocksdb import records

    clocks = [10**15 + 3, 1_700_000_000 * 10**9 + 11]
    store = _rocksdb_store(tmp_path / "db", clocks, pure=False)
    try:
        store.checked_acquire("k", limit)  # Python creates the bucket
        clocks[0] += 123_456_789
        clocks[1] += 987_654_321
        store.checked_acquire("k", limit, cost=2)  # C decides and writes
        tat = _states(store)[limit.identity]["k"]
        expected = records.encode(tat, limit, clocks[1] - clocks[0])
        assert _records(store) == {records.record_key((limit.identity, "k")): expected}
    finally:
        store.close()
