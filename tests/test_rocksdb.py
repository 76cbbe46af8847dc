"""The RocksDB backend, in one process: records, restarts, clocks, corruption.

Every store lives in a real RocksDB directory under ``tmp_path``; both clocks
are fakes, so restarts and clock steps are exact and nothing sleeps.
Multi-process behaviour (crashes, the owner lock, read-only and full disks)
is in ``test_rocksdb_process.py``.
"""

from __future__ import annotations

import asyncio
import doctest
import logging
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import rocksdict

import bucketcore.backends.rocksdb as rocksdb_backend
import bucketcore.backends.rocksdb.database as rocksdb_database
import bucketcore.backends.rocksdb.group_commit as rocksdb_group_commit
import bucketcore.backends.rocksdb.persistence as rocksdb_persistence
import bucketcore.backends.rocksdb.records as rocksdb_records
import bucketcore.backends.rocksdb.store as rocksdb_store
from bucketcore import (
    AsyncLimiter,
    ConfigurationError,
    CorruptState,
    Limit,
    Limiter,
    StoreClosed,
    StoreError,
    StoreLocked,
)
from bucketcore.backends.rocksdb import RocksDBStore
from bucketcore.decision import seconds_at_least

SECOND = 1_000_000_000
WALL_START = 1_800_000_000 * SECOND  # an arbitrary wall-clock instant (2027)


class Clocks:
    """A monotonic and a wall clock that tests move by hand."""

    def __init__(self, monotonic: int = 5 * SECOND, wall: int = WALL_START) -> None:
        self.monotonic = monotonic
        self.wall = wall

    def advance(self, ns: int) -> None:
        self.monotonic += ns
        self.wall += ns

    def restart(self, monotonic: int = 77 * SECOND) -> None:
        """A new process: the monotonic clock restarts anywhere, wall time goes on."""
        self.monotonic = monotonic


def open_store(path: Path, clocks: Clocks, **options: Any) -> RocksDBStore:
    return RocksDBStore(
        path, clock=lambda: clocks.monotonic, wall_clock=lambda: clocks.wall, **options
    )


def records(path: Path) -> dict[bytes, bytes]:
    """Every bucket record in a closed store, read with rocksdict directly."""
    db = rocksdict.Rdict(str(path), rocksdb_database.rocksdb_options())
    try:
        return {key: value for key, value in db.items() if key[:1] == b"\x01"}
    finally:
        db.close()


def put_raw(path: Path, key: bytes, value: bytes) -> None:
    db = rocksdict.Rdict(str(path), rocksdb_database.rocksdb_options())
    try:
        db.put(key, value)
    finally:
        db.close()


def only_record_key(path: Path) -> bytes:
    (key,) = records(path)
    return key


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "limits"


@pytest.mark.parametrize(
    "module",
    [
        rocksdb_backend,
        rocksdb_database,
        rocksdb_group_commit,
        rocksdb_persistence,
        rocksdb_records,
        rocksdb_store,
    ],
)
def test_module_doctests_pass(module: object) -> None:
    results = doctest.testmod(module)  # type: ignore[arg-type]
    assert results.attempted > 0
    assert results.failed == 0


# -- restart ---------------------------------------------------------------------


@pytest.mark.parametrize("durability", ["wal", "sync", "periodic"])
def test_a_reopened_store_is_refilled_by_exactly_the_elapsed_time(
    path: Path, clocks: Clocks, durability: str
) -> None:
    limit = Limit(10, 10.0)  # one token a second
    with Limiter(open_store(path, clocks, durability=durability)) as limiter:
        assert all(limiter.try_acquire("alice", limit) for _ in range(10))
        assert not limiter.try_acquire("alice", limit)
    clocks.restart()
    clocks.wall += 3 * SECOND + SECOND // 2
    with Limiter(open_store(path, clocks, durability=durability)) as limiter:
        denied = limiter.peek("alice", limit, cost=4)
        assert not denied.allowed
        assert denied.retry_after == seconds_at_least(SECOND // 2)
        assert [limiter.try_acquire("alice", limit) for _ in range(4)] == [True] * 3 + [False]


def test_fractions_of_a_token_survive_a_restart(path: Path, clocks: Clocks) -> None:
    limit = Limit(3, 1.0)  # a token every 333_333_333 1/3 ns
    with Limiter(open_store(path, clocks)) as limiter:
        assert limiter.acquire("k", limit, cost=2).allowed  # full in 666_666_666 2/3 ns
    clocks.restart()
    with Limiter(open_store(path, clocks)) as limiter:
        # Two more tokens are due in 333_333_333 1/3 ns; had the 2/3 been
        # dropped, they would be due one nanosecond earlier.
        assert limiter.peek("k", limit, cost=2).retry_after == seconds_at_least(333_333_334)
        clocks.advance(333_333_333)
        assert not limiter.try_acquire("k", limit, cost=2)
        clocks.advance(1)
        assert limiter.try_acquire("k", limit, cost=2)


def test_all_limits_of_a_call_are_restored(path: Path, clocks: Clocks) -> None:
    per_second, per_hour = Limit(5, 1.0), Limit(7, 3600.0, name="hourly")
    with Limiter(open_store(path, clocks)) as limiter:
        assert limiter.acquire("k", per_second, per_hour, cost=4).allowed
    clocks.restart()
    with Limiter(open_store(path, clocks)) as limiter:
        assert limiter.peek("k", per_hour, cost=3).allowed
        assert not limiter.peek("k", per_hour, cost=4).allowed
        assert not limiter.peek("k", per_second, cost=2).allowed


def test_str_and_bytes_keys_share_a_record_and_odd_keys_stay_apart(
    path: Path, clocks: Clocks
) -> None:
    limit = Limit(1, 60.0)
    odd_keys: list[str | bytes] = ["a:b", "a", ":b", "\x00", "", b"\xff", "{x}", "é"]
    with Limiter(open_store(path, clocks)) as limiter:
        assert limiter.try_acquire(b"alice", limit)
        assert all(limiter.try_acquire(key, limit) for key in odd_keys)
    clocks.restart()
    with Limiter(open_store(path, clocks)) as limiter:
        assert not limiter.try_acquire("alice", limit)
        assert not any(limiter.try_acquire(key, limit) for key in odd_keys)
        assert limiter.try_acquire("b", limit)
    assert len(records(path)) == 2 + len(odd_keys)


def test_named_limits_with_the_same_name_share_a_record(path: Path, clocks: Clocks) -> None:
    with Limiter(open_store(path, clocks)) as limiter:
        assert limiter.try_acquire("k", Limit(1, 60.0, name="api"))
    clocks.restart()
    with Limiter(open_store(path, clocks)) as limiter:
        assert not limiter.try_acquire("k", Limit(1, 60.0, name="api"))
        assert limiter.try_acquire("k", Limit(1, 60.0, name="web"))


def test_a_changed_rate_for_a_named_limit_is_clamped_to_its_new_burst(
    path: Path, clocks: Clocks
) -> None:
    with Limiter(open_store(path, clocks)) as limiter:
        assert limiter.acquire("k", Limit(100, 100.0, name="api"), cost=100).allowed
    clocks.restart()
    with Limiter(open_store(path, clocks)) as limiter:
        # Stored: full in 100 s. The new limit is empty-to-full in 10 s.
        decision = limiter.peek("k", Limit(3, 10.0, name="api"))
        assert decision.reset_after == seconds_at_least(10 * SECOND)
        assert not decision.allowed


@pytest.mark.parametrize("durability", ["wal", "sync", "periodic"])
@pytest.mark.parametrize(
    ("new_limit", "left_after_one"),
    [
        (Limit(100, 10.0, name="plan"), 5),  # upgrade: the 6 tokens held carry over
        (Limit(2, 10.0, name="plan"), 1),  # downgrade: capped at the new burst of 2
    ],
    ids=["upgrade", "downgrade"],
)
def test_a_limit_changed_between_runs_converts_the_tokens_held(
    path: Path, clocks: Clocks, durability: str, new_limit: Limit, left_after_one: int
) -> None:
    # docs/design.md §3: tokens carry over, not the time to full (4 s here,
    # which would be 40 tokens of the upgrade and 1.2 of the downgrade).
    with Limiter(open_store(path, clocks, durability=durability)) as limiter:
        assert limiter.acquire("k", Limit(10, 10.0, name="plan"), cost=4).remaining == 6
    clocks.restart()
    with Limiter(open_store(path, clocks, durability=durability)) as limiter:
        assert limiter.acquire("k", new_limit).remaining == left_after_one


@pytest.mark.parametrize("durability", ["wal", "sync", "periodic"])
def test_a_drain_longer_than_a_refill_survives_a_restart(
    path: Path, clocks: Clocks, durability: str
) -> None:
    limit = Limit(1, 1.0)  # empty to full in 1 s: a 30 s drain is a hold
    with Limiter(open_store(path, clocks, durability=durability)) as limiter:
        limiter.drain("k", limit, seconds=30)
    clocks.restart()
    clocks.wall += 10 * SECOND
    with Limiter(open_store(path, clocks, durability=durability)) as limiter:
        denied = limiter.acquire("k", limit)
        assert denied.retry_after == seconds_at_least(20 * SECOND)
        clocks.advance(20 * SECOND - 1)
        assert not limiter.try_acquire("k", limit)
        clocks.advance(1)
        assert limiter.try_acquire("k", limit)
        assert not limiter.try_acquire("k", limit)


def test_a_hold_read_back_after_a_wall_clock_step_back_is_no_longer_than_asked(
    path: Path, clocks: Clocks
) -> None:
    limit = Limit(1, 1.0)
    with Limiter(open_store(path, clocks)) as limiter:
        limiter.drain("k", limit, seconds=30)
    clocks.restart()
    clocks.wall -= 3600 * SECOND  # the deadline now reads 3630 s ahead
    with Limiter(open_store(path, clocks)) as limiter:
        assert limiter.acquire("k", limit).retry_after == seconds_at_least(30 * SECOND)


def test_a_refund_during_a_hold_keeps_the_hold_across_a_restart(path: Path, clocks: Clocks) -> None:
    limit = Limit(1, 1.0)
    with Limiter(open_store(path, clocks)) as limiter:
        limiter.drain("k", limit, seconds=30)
        limiter.refund("k", limit, tokens=1)  # the first token at 29 s
    clocks.restart()
    with Limiter(open_store(path, clocks)) as limiter:
        assert limiter.acquire("k", limit).retry_after == seconds_at_least(29 * SECOND)


def test_version_1_records_still_load_as_under_the_callers_limit(
    path: Path, clocks: Clocks
) -> None:
    limit = Limit(3, 3.0)
    with Limiter(open_store(path, clocks)) as limiter:
        assert limiter.try_acquire("k", limit)
    # What version 1 wrote: full again 2 s after the wall clock's now.
    put_raw(path, only_record_key(path), struct.pack("<BqQQ", 1, WALL_START + 2 * SECOND, 0, 1))
    clocks.restart()
    with Limiter(open_store(path, clocks)) as limiter:
        assert limiter.acquire("k", limit).remaining == 0
        assert not limiter.try_acquire("k", limit)


# -- clock steps between runs ------------------------------------------------------


def test_a_wall_clock_step_forward_gives_at_most_a_full_bucket(path: Path, clocks: Clocks) -> None:
    limit = Limit(5, 50.0)
    with Limiter(open_store(path, clocks)) as limiter:
        assert limiter.acquire("k", limit, cost=5).allowed
    clocks.restart()
    clocks.wall += 365 * 86400 * SECOND
    with Limiter(open_store(path, clocks)) as limiter:
        assert [limiter.try_acquire("k", limit) for _ in range(6)] == [True] * 5 + [False]


def test_a_wall_clock_step_backwards_waits_no_longer_than_an_empty_bucket(
    path: Path, clocks: Clocks
) -> None:
    limit = Limit(5, 50.0)  # empty to full: 50 s
    with Limiter(open_store(path, clocks)) as limiter:
        assert limiter.acquire("k", limit, cost=2).allowed  # 20 s below full
    clocks.restart()
    clocks.wall -= 86400 * SECOND
    with Limiter(open_store(path, clocks)) as limiter:
        decision = limiter.peek("k", limit)
        assert decision.reset_after == seconds_at_least(50 * SECOND)
        assert decision.retry_after == seconds_at_least(10 * SECOND)
        assert decision.remaining == 0


def test_a_small_step_backwards_shifts_the_state_by_the_step(path: Path, clocks: Clocks) -> None:
    limit = Limit(5, 50.0)
    with Limiter(open_store(path, clocks)) as limiter:
        assert limiter.acquire("k", limit, cost=2).allowed  # full in 20 s
    clocks.restart()
    clocks.wall -= 5 * SECOND
    with Limiter(open_store(path, clocks)) as limiter:
        # Full in 20 + 5 s, and the peeked token adds its 10 s.
        assert limiter.peek("k", limit).reset_after == seconds_at_least(35 * SECOND)


# -- corrupt and foreign records ---------------------------------------------------


def corrupt_the_only_record(path: Path, clocks: Clocks, value: bytes) -> None:
    with Limiter(open_store(path, clocks)) as limiter:
        assert limiter.try_acquire("victim", Limit(3, 60.0))
    put_raw(path, only_record_key(path), value)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\x01" * 24,
        b"\x01" * 26,
        struct.pack("<BqQQ", 2, WALL_START, 0, 1),  # version 2 in version 1's size
        struct.pack("<BqQQQQqQ", 3, WALL_START, 0, 1, 1, 1, 0, 0),  # a future format version
        struct.pack("<BqQQ", 1, WALL_START, 5, 5),  # remainder not below its unit
        struct.pack("<BqQQQQqQ", 2, WALL_START, 5, 5, 1, 1, 0, 0),
        struct.pack("<BqQQQQqQ", 2, WALL_START, 0, 1, 0, 1, 0, 0),  # no token units
        b"\x80\x04\x95pickle",
    ],
    ids=[
        "empty",
        "short",
        "long",
        "v2-short",
        "version",
        "remainder-v1",
        "remainder",
        "signature",
        "pickle",
    ],
)
def test_a_corrupt_record_raises_corrupt_state_naming_the_key(
    path: Path, clocks: Clocks, value: bytes
) -> None:
    corrupt_the_only_record(path, clocks, value)
    with Limiter(open_store(path, clocks)) as limiter:
        with pytest.raises(CorruptState, match="victim"):
            limiter.try_acquire("victim", Limit(3, 60.0))
        assert limiter.try_acquire("bystander", Limit(3, 60.0))


def test_on_corrupt_empty_treats_the_bucket_as_empty_and_logs(
    path: Path, clocks: Clocks, caplog: pytest.LogCaptureFixture
) -> None:
    corrupt_the_only_record(path, clocks, b"garbage")
    limit = Limit(3, 60.0)  # a token every 20 s
    caplog.set_level(logging.WARNING, logger="bucketcore.rocksdb")
    with Limiter(open_store(path, clocks, on_corrupt="empty")) as limiter:
        decision = limiter.acquire("victim", limit)
        assert not decision.allowed
        assert decision.retry_after == seconds_at_least(20 * SECOND)
    assert "victim" in caplog.text


def test_on_corrupt_empty_replaces_the_record_logs_once_and_refills(
    path: Path, clocks: Clocks, caplog: pytest.LogCaptureFixture
) -> None:
    corrupt_the_only_record(path, clocks, b"garbage")
    limit = Limit(3, 60.0)  # a token every 20 s
    caplog.set_level(logging.WARNING, logger="bucketcore.rocksdb")
    with Limiter(open_store(path, clocks, on_corrupt="empty")) as limiter:
        assert not any(limiter.try_acquire("victim", limit) for _ in range(5))
        clocks.advance(20 * SECOND)
        assert limiter.try_acquire("victim", limit)  # it refills like any bucket
        assert not limiter.try_acquire("victim", limit)
    assert len([r for r in caplog.records if "victim" in r.getMessage()]) == 1
    clocks.restart()
    with Limiter(open_store(path, clocks)) as limiter:  # the record is whole again
        assert not limiter.try_acquire("victim", limit)


def write_foreign_database(path: Path) -> None:
    db = rocksdict.Rdict(str(path), rocksdict.Options(raw_mode=True))
    db.put(b"user:42", b"someone else's data")
    db.close()


def test_a_foreign_rocksdb_directory_is_refused(path: Path, clocks: Clocks) -> None:
    write_foreign_database(path)
    with pytest.raises(CorruptState, match="not a bucketcore store"):
        open_store(path, clocks).open()


def test_a_pickled_rocksdict_directory_is_a_store_error(path: Path, clocks: Clocks) -> None:
    db = rocksdict.Rdict(str(path))  # rocksdict's default mode: pickles, its own comparator
    db["user"] = {"not": "ours"}
    db.close()
    with pytest.raises(StoreError, match=r"bucketcore store|comparator"):
        open_store(path, clocks).open()


def test_a_refused_foreign_directory_releases_the_owner_lock(path: Path, clocks: Clocks) -> None:
    write_foreign_database(path)
    for _ in range(2):  # a leaked lock would make the second attempt StoreLocked
        with pytest.raises(CorruptState):
            open_store(path, clocks).open()


def test_records_are_fixed_size_structs_with_a_version_byte(path: Path, clocks: Clocks) -> None:
    with Limiter(open_store(path, clocks)) as limiter:
        assert limiter.acquire("k", Limit(3, 1.0), cost=2).allowed
    (value,) = records(path).values()
    version, full_at_wall, remainder, *signature, held_until, held_for = struct.unpack(
        "<BqQQQQqQ", value
    )
    assert (version, signature) == (2, list(Limit(3, 1.0).signature))
    # Full again 2/3 s after WALL_START: 666_666_666 ns and 2/3 of one.
    assert (full_at_wall - WALL_START, remainder) == (666_666_666, 2)
    assert (held_until, held_for) == (0, 0)


# -- bounded disk -------------------------------------------------------------------


def test_buckets_swept_from_memory_lose_their_records(
    path: Path, clocks: Clocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rocksdb_persistence, "DISK_SWEEP_EVERY", 10**9)  # the memory sweep alone
    limit = Limit(1, 1.0)
    with Limiter(open_store(path, clocks)) as limiter:
        for key in range(100):
            assert limiter.try_acquire(f"old-{key}", limit)
        clocks.advance(2 * SECOND)  # every old bucket is full again
        for key in range(300):
            assert limiter.try_acquire(f"new-{key}", limit)
    assert sum(b"old-" in key for key in records(path)) == 0
    assert sum(b"new-" in key for key in records(path)) == 300


def test_full_records_left_by_an_earlier_run_are_swept(path: Path, clocks: Clocks) -> None:
    limit = Limit(1, 1.0)
    with Limiter(open_store(path, clocks)) as limiter:
        for key in range(300):
            assert limiter.try_acquire(f"old-{key}", limit)
    assert len(records(path)) == 300
    clocks.restart()
    clocks.wall += 2 * SECOND
    with Limiter(open_store(path, clocks)) as limiter:
        for key in range(1000):  # new buckets pay for the sweep
            assert limiter.try_acquire(f"new-{key}", limit)
    assert not any(b"old-" in key for key in records(path))


def test_the_disk_sweep_keeps_records_that_are_not_full(path: Path, clocks: Clocks) -> None:
    with Limiter(open_store(path, clocks)) as limiter:
        for key in range(300):
            assert limiter.try_acquire(f"old-{key}", Limit(1, 3600.0))
    clocks.restart()
    clocks.wall += 2 * SECOND
    with Limiter(open_store(path, clocks)) as limiter:
        for key in range(1000):
            assert limiter.try_acquire(f"new-{key}", Limit(1, 1.0))
        assert not any(limiter.try_acquire(f"old-{key}", Limit(1, 3600.0)) for key in range(300))


def test_a_reset_or_a_full_refund_deletes_the_record(path: Path, clocks: Clocks) -> None:
    limit = Limit(2, 60.0)
    with Limiter(open_store(path, clocks)) as limiter:
        limiter.acquire("a", limit)
        limiter.acquire("b", limit)
        limiter.reset("a", limit)
        limiter.refund("b", limit)
    assert records(path) == {}


# -- periodic write-behind ------------------------------------------------------------


def test_periodic_writes_only_on_flush(path: Path, clocks: Clocks) -> None:
    store = open_store(path, clocks, durability="periodic", flush_interval=3600)
    limit = Limit(3, 60.0)
    try:
        for _ in range(3):
            assert store.try_acquire("k", (limit,), 1)
        assert store._persistence.db.get(only_key_for(store, "k", limit)) is None
        store.flush()
        assert store._persistence.db.get(only_key_for(store, "k", limit)) is not None
    finally:
        store.close()


def test_periodic_reads_a_pending_state_after_the_memory_sweep(path: Path, clocks: Clocks) -> None:
    store = open_store(path, clocks, durability="periodic", flush_interval=3600)
    limit = Limit(1, 1.0)
    try:
        assert store.try_acquire("k", (limit,), 1)
        store.flush()
        store.refund("k", (limit,), 1)  # pending: the record is to be deleted
        assert store.try_acquire("k", (limit,), 1)
        store.reset("k", (limit,))
        assert store.try_acquire("k", (limit,), 1)
    finally:
        store.close()


def only_key_for(store: RocksDBStore, key: str, limit: Limit) -> bytes:
    return rocksdb_records.record_key((limit.identity, key))


# -- sync: group commit ---------------------------------------------------------------


def test_sync_threads_are_granted_exactly_the_burst(path: Path, clocks: Clocks) -> None:
    limit = Limit(400, 3600.0)
    granted = []
    with Limiter(open_store(path, clocks, durability="sync")) as limiter:

        def hammer() -> None:
            granted.append(sum(limiter.try_acquire("hot", limit) for _ in range(100)))

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sum(granted) == 400
    clocks.restart()
    with Limiter(open_store(path, clocks)) as limiter:
        assert not limiter.try_acquire("hot", limit)


@pytest.mark.parametrize("durability", ["sync", "periodic"])
def test_flushes_from_another_thread_never_overlap(
    path: Path, clocks: Clocks, durability: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two batches written at once could land out of order: an old state last."""
    limit = Limit(10_000, 3600.0)
    store = open_store(path, clocks, durability=durability, flush_interval=0.001)
    store.open()
    real_db = store._persistence.db
    writing = [0, 0]  # now, most at once
    guard = threading.Lock()

    class SlowWritesDb:
        def __getattr__(self, name: str) -> Any:
            return getattr(real_db, name)

        def write(self, batch: rocksdict.WriteBatch, options: rocksdict.WriteOptions) -> None:
            with guard:
                writing[0] += 1
                writing[1] = max(writing)
            time.sleep(0.0005)  # widens the window in which another write could start
            real_db.write(batch, options)
            with guard:
                writing[0] -= 1

    monkeypatch.setattr(store._persistence, "db", SlowWritesDb())
    stop = threading.Event()

    def flush_all_the_time() -> None:
        while not stop.is_set():
            store.flush()

    def take_tokens() -> None:
        for _ in range(100):
            assert store.try_acquire("hot", (limit,), 1)

    threads = [threading.Thread(target=take_tokens) for _ in range(4)]
    flusher = threading.Thread(target=flush_all_the_time)
    for thread in [flusher, *threads]:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    flusher.join()
    store.close()
    assert writing == [0, 1]
    clocks.restart()
    with Limiter(open_store(path, clocks)) as limiter:
        assert not limiter.peek("hot", limit, cost=10_000 - 400 + 1).allowed
        assert limiter.peek("hot", limit, cost=10_000 - 400).allowed


def test_sync_returns_only_after_its_decision_was_written_and_fsynced(
    path: Path, clocks: Clocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(path, clocks, durability="sync")
    store.open()
    real_db = store._persistence.db
    events: list[str] = []

    class RecordingDb:
        def __getattr__(self, name: str) -> Any:
            return getattr(real_db, name)

        def write(self, batch: rocksdict.WriteBatch, options: rocksdict.WriteOptions) -> None:
            events.append(f"write {len(batch)}")
            real_db.write(batch, options)

        def flush_wal(self, sync: bool = True) -> None:
            events.append(f"fsync {sync}")
            real_db.flush_wal(sync)

    monkeypatch.setattr(store._persistence, "db", RecordingDb())
    limit = Limit(1000, 1.0)
    for calls in range(1, 4):
        assert store.try_acquire("k", (limit,), 1)
        # one record, and the batch's fsync count (backends/rocksdb/synced_mark.py)
        assert events == ["write 2", "fsync True"] * calls
    assert store.acquire("k", (limit, Limit(9, 1.0)), 1).allowed  # two records, one batch
    assert events[-2:] == ["write 3", "fsync True"]
    assert not store.peek("k", (limit,), 997).allowed  # a read writes nothing
    assert len(events) == 8
    monkeypatch.setattr(store._persistence, "db", real_db)
    store.close()


def test_sync_answers_no_thread_before_the_fsync_of_its_state(
    path: Path, clocks: Clocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each caller's newest record must be fsynced when its call returns.

    The fake database notes, per caller key, the record each write left and
    the record each fsync covered; a caller answered early (before the
    write, or during the fsync) finds its synced record unchanged.
    """
    store = open_store(path, clocks, durability="sync")
    store.open()
    real_db = store._persistence.db
    limit = Limit(10_000, 3600.0)
    keys = [f"thread-{index}" for index in range(8)]
    record_keys = {key: rocksdb_records.record_key((limit.identity, key)) for key in keys}
    written: dict[str, bytes | None] = dict.fromkeys(keys)
    synced: dict[str, bytes | None] = dict.fromkeys(keys)
    guard = threading.Lock()

    class SyncTrackingDb:
        def __getattr__(self, name: str) -> Any:
            return getattr(real_db, name)

        def write(self, batch: rocksdict.WriteBatch, options: rocksdict.WriteOptions) -> None:
            real_db.write(batch, options)
            with guard:
                written.update((key, real_db.get(record_keys[key])) for key in keys)

        def flush_wal(self, sync: bool = True) -> None:
            with guard:
                covered = dict(written)
            time.sleep(0.001)  # an fsync long enough for an early answer to show
            real_db.flush_wal(sync)
            if sync:
                with guard:
                    synced.update(covered)

    monkeypatch.setattr(store._persistence, "db", SyncTrackingDb())
    early: list[str] = []

    def take_tokens(key: str) -> None:
        for _ in range(30):
            with guard:
                before = synced[key]
            assert store.try_acquire(key, (limit,), 1)  # a new record: the tat moves on
            with guard:
                if synced[key] == before:
                    early.append(key)

    threads = [threading.Thread(target=take_tokens, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    monkeypatch.setattr(store._persistence, "db", real_db)
    store.close()
    assert early == []


def test_sync_a_caller_interrupted_while_gathering_leaves_no_one_waiting(
    path: Path, clocks: Clocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first caller of a batch times the batch out; if it is interrupted
    (a KeyboardInterrupt in its wait), the next caller must take that on."""
    store = open_store(path, clocks, durability="sync")
    limit = Limit(10, 3600.0)
    first = threading.Event()

    class InterruptedLock:
        def acquire(self, timeout: float = -1) -> bool:
            while len(store._persistence.group.batch) < 2:  # the second caller waits behind it
                time.sleep(0.001)
            raise KeyboardInterrupt

        def release(self) -> None:
            pass

    class FirstOneInterrupted(rocksdb_group_commit.Waiter):
        __slots__ = ()

        def __init__(self) -> None:
            super().__init__()
            if not first.is_set():
                first.set()
                self.lock = InterruptedLock()  # type: ignore[assignment]

    monkeypatch.setattr(rocksdb_group_commit, "Waiter", FirstOneInterrupted)
    store._persistence.group.want = 3  # a batch of three is expected: the first caller gathers
    outcomes: dict[str, object] = {}

    def call(key: str) -> None:
        try:
            outcomes[key] = store.try_acquire(key, (limit,), 1)
        except KeyboardInterrupt:
            outcomes[key] = "interrupted"

    interrupted = threading.Thread(target=call, args=("a",))
    interrupted.start()
    while not first.is_set():
        time.sleep(0.001)
    second = threading.Thread(target=call, args=("b",))
    second.start()
    for thread in (interrupted, second):
        thread.join(timeout=10)
    assert outcomes == {"a": "interrupted", "b": True}
    store.close()
    clocks.restart()
    with Limiter(open_store(path, clocks)) as limiter:  # both states were fsynced
        # One token taken from each; peek reports what one more acquire would leave.
        assert limiter.peek("a", limit).remaining == limiter.peek("b", limit).remaining == 8


def test_async_limiter_on_sync_waits_for_the_fsync_off_the_event_loop(
    path: Path, clocks: Clocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync decision waiting for its fsync must not stop the other tasks."""
    store = open_store(path, clocks, durability="sync")
    store.open()
    real_db = store._persistence.db
    fsyncing = threading.Event()
    fsync_may_end = threading.Event()

    class GatedDb:
        def __getattr__(self, name: str) -> Any:
            return getattr(real_db, name)

        def flush_wal(self, sync: bool = True) -> None:
            fsyncing.set()
            fsync_may_end.wait(timeout=5)  # a bound, so a blocked loop fails instead of hanging
            real_db.flush_wal(sync)

    monkeypatch.setattr(store._persistence, "db", GatedDb())
    limiter = AsyncLimiter(store)

    async def scenario() -> tuple[bool, bool]:
        decision = asyncio.ensure_future(limiter.acquire("k", Limit(5, 60.0)))
        while not fsyncing.is_set():  # this task goes on while the decision is fsynced
            await asyncio.sleep(0.001)
        waiting_meanwhile = not decision.done()
        fsync_may_end.set()
        allowed = (await decision).allowed
        monkeypatch.setattr(store._persistence, "db", real_db)
        await limiter.close()
        return waiting_meanwhile, allowed

    assert asyncio.run(scenario()) == (True, True)


# -- closing, options, errors ---------------------------------------------------------


def test_a_closed_store_raises_store_closed(path: Path, clocks: Clocks) -> None:
    store = open_store(path, clocks)
    limit = Limit(1, 1.0)
    assert store.try_acquire("k", (limit,), 1)
    store.close()
    store.close()  # idempotent
    for call in (
        lambda: store.try_acquire("k", (limit,), 1),
        lambda: store.try_acquire("new", (limit,), 1),
        lambda: store.acquire("k", (limit,), 1),
        lambda: store.peek("k", (limit,), 1),
        lambda: store.refund("k", (limit,), 1),
        lambda: store.reset("k", (limit,)),
    ):
        with pytest.raises(StoreClosed):
            call()


def test_close_releases_the_owner_lock(path: Path, clocks: Clocks) -> None:
    store = open_store(path, clocks)
    store.open()
    with pytest.raises(StoreLocked, match="pid"):
        open_store(path, clocks).open()
    store.close()
    opened = open_store(path, clocks)
    opened.open()
    opened.close()


def test_url_options_are_parsed_and_validated(tmp_path: Path) -> None:
    url = f"rocksdb://{tmp_path}/a?durability=periodic&flush_interval=0.25&lock_timeout=inf"
    with Limiter(url) as limiter:
        store = limiter.store
        assert isinstance(store, RocksDBStore)
        assert (store.durability, store.flush_interval, store.lock_timeout) == (
            "periodic",
            0.25,
            float("inf"),
        )
        assert store.on_corrupt == "raise"


@pytest.mark.parametrize(
    "query",
    [
        "durability=fast",
        "flush_interval=0",
        "flush_interval=-1",
        "flush_interval=nan",
        "flush_interval=inf",
        "flush_interval=soon",
        "lock_timeout=-1",
        "on_corrupt=ignore",
        "colour=red",
        "durability=wal&durability=sync",
    ],
)
def test_bad_url_options_are_refused(tmp_path: Path, query: str) -> None:
    with pytest.raises(ConfigurationError):
        Limiter(f"rocksdb://{tmp_path}/a?{query}")
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("url", ["rocksdb://host/path", "rocksdb://", "rocksdb:///"])
def test_bad_rocksdb_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        Limiter(url)


def test_relative_urls_are_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Limiter("rocksdb://./data/limits?create=true") as limiter:
        assert limiter.try_acquire("k", Limit(1, 1.0))
    assert (tmp_path / "data" / "limits" / "CURRENT").exists()
    assert (tmp_path / "data" / "limits.owner.lock").exists()


def test_options_are_validated_as_keywords_too(path: Path) -> None:
    with pytest.raises(ConfigurationError):
        RocksDBStore(path, durability="SYNC")
    with pytest.raises(ConfigurationError):
        RocksDBStore(path, flush_interval=True)
    with pytest.raises(ConfigurationError):
        RocksDBStore(path, wall_clock=5)  # type: ignore[arg-type]


def test_a_missing_extra_names_the_pip_install(tmp_path: Path) -> None:
    script = (
        "import sys; sys.modules['rocksdict'] = None\n"
        "from bucketcore import ConfigurationError, Limiter\n"
        "for attempt in (lambda: Limiter(sys.argv[1]),\n"
        "                lambda: __import__('bucketcore.backends.rocksdb')):\n"
        "    try:\n"
        "        attempt()\n"
        "    except ConfigurationError as exc:\n"
        "        print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, f"rocksdb://{tmp_path}/db"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert all("pip install 'bucketcore[rocksdb]'" in line for line in lines)


class ExplodingDb:
    """Every rocksdict call fails the way rocksdict fails: a bare Exception."""

    def __getattr__(self, name: str) -> Any:
        def explode(*args: object, **kwargs: object) -> None:
            raise Exception(f"IO error: {name} exploded")

        return explode


@pytest.mark.parametrize("durability", ["wal", "sync", "periodic"])
def test_every_rocksdict_failure_is_a_store_error(
    path: Path, clocks: Clocks, monkeypatch: pytest.MonkeyPatch, durability: str
) -> None:
    store = open_store(path, clocks, durability=durability, flush_interval=3600)
    assert store.try_acquire("k", (Limit(5, 1.0),), 1)
    real_db = store._persistence.db
    monkeypatch.setattr(store._persistence, "db", ExplodingDb())
    limit, pair = Limit(5, 1.0), (Limit(5, 1.0), Limit(9, 1.0))
    calls = [
        lambda: store.try_acquire("miss", (limit,), 1),
        lambda: store.acquire("miss2", pair, 1),
        lambda: store.peek("miss3", (limit,), 1),
        lambda: store.refund("miss4", (limit,), 1),
    ]
    if durability != "periodic":  # periodic defers these writes to flush()
        calls += [
            lambda: store.try_acquire("k", (limit,), 1),
            lambda: store.acquire("k", (limit,), 1),
            lambda: store.reset("k", (limit,)),
        ]
    else:
        calls += [store.flush]
    for call in calls:
        with pytest.raises(StoreError, match="exploded"):
            call()
    monkeypatch.setattr(store._persistence, "db", real_db)
    store.close()


def test_a_failed_wal_write_leaves_the_bucket_as_it_was(
    path: Path, clocks: Clocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(path, clocks)
    limit = Limit(3, 60.0)
    assert store.try_acquire("k", (limit,), 1)
    real_db = store._persistence.db
    monkeypatch.setattr(store._persistence, "db", ExplodingDb())
    with pytest.raises(StoreError):
        store.try_acquire("k", (limit,), 1)
    with pytest.raises(StoreError):
        store.acquire("k", (limit,), 1)
    monkeypatch.setattr(store._persistence, "db", real_db)
    assert [store.try_acquire("k", (limit,), 1) for _ in range(3)] == [True, True, False]
    store.close()


def test_a_failed_background_flush_is_raised_by_the_next_change(
    path: Path, clocks: Clocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(path, clocks, durability="periodic", flush_interval=3600)
    limit = Limit(3, 60.0)
    assert store.try_acquire("k", (limit,), 1)
    real_db = store._persistence.db
    monkeypatch.setattr(store._persistence, "db", ExplodingDb())
    rounds = iter([False, True])  # one flush, then stop
    monkeypatch.setattr(store._persistence._stop, "wait", lambda timeout: next(rounds))
    store._persistence._flush_periodically()
    monkeypatch.setattr(store._persistence, "db", real_db)
    with pytest.raises(StoreError, match="exploded"):
        store.try_acquire("k", (limit,), 1)  # refused: takes nothing
    assert store.try_acquire("k", (limit,), 1)  # reported once; the pending state was kept
    store.close()
    clocks.restart()
    with Limiter(open_store(path, clocks)) as limiter:  # both tokens taken were written
        assert [limiter.try_acquire("k", limit) for _ in range(2)] == [True, False]
