"""lmdb:// in one process: URLs and options, records and the time anchor, growth, cleanup."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bucketcore import ConfigurationError, CorruptState, Limit, Limiter, StoreClosed
from bucketcore.backends.lmdb import LMDBStore
from bucketcore.backends.lmdb.records import (
    RECORD,
    Anchor,
    anchor_for,
    encode,
    record_keys,
    record_prefix,
    tat_from_record,
)
from tests.conftest import FakeClock

SECOND = 1_000_000_000
BOOT_A, BOOT_B = b"a" * 16, b"b" * 16


# -- URLs and options ----------------------------------------------------------------


def test_absolute_and_relative_urls_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with Limiter("lmdb://./relative") as limiter:
        assert limiter.try_acquire("k", Limit(1, 60.0))
    with Limiter(f"lmdb://{tmp_path}/absolute") as limiter:
        assert limiter.try_acquire("k", Limit(1, 60.0))
    assert (tmp_path / "relative" / "data.mdb").exists()
    assert (tmp_path / "absolute" / "data.mdb").exists()


@pytest.mark.parametrize(
    "query",
    [
        "durability=fast",
        "flush_interval=nan",
        "flush_interval=-1",
        "flush_interval=inf",
        "flush_interval=0",
        "map_size=-5",
        "map_size=1.5",
        "map_size=12",
        "create=maybe",
        "colour=red",
        "durability=wal&durability=sync",
    ],
)
def test_bad_options_are_configuration_errors(tmp_path: Path, query: str) -> None:
    with pytest.raises(ConfigurationError):
        Limiter(f"lmdb://{tmp_path}/limits?{query}")


@pytest.mark.parametrize(
    "options",
    [
        {"map_size": True},
        {"map_size": 2.0**20},
        {"flush_interval": math.nan},
        {"flush_interval": "soon"},
        {"durability": None},
        {"create": 1},
        {"clock": 5},
        {"boot": b"short"},
    ],
)
def test_bad_keyword_options_are_configuration_errors(
    tmp_path: Path, options: dict[str, object]
) -> None:
    with pytest.raises(ConfigurationError):
        LMDBStore(tmp_path / "limits", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["lmdb://", "lmdb:///", "lmdb://host/path", "lmdb://./"])
def test_urls_that_name_no_directory_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        Limiter(url)


def test_a_missing_parent_is_refused_unless_create(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="create=true"):
        Limiter(f"lmdb://{tmp_path}/missing/limits")
    with Limiter(f"lmdb://{tmp_path}/missing/limits?create=true") as limiter:
        assert limiter.try_acquire("k", Limit(1, 60.0))


def test_a_file_where_the_directory_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "limits").write_text("not a directory")
    with pytest.raises(ConfigurationError, match="is a file"):
        Limiter(f"lmdb://{tmp_path}/limits")


def test_stores_on_one_path_in_one_process_share_and_must_agree(tmp_path: Path) -> None:
    first = LMDBStore(tmp_path / "limits")
    second = LMDBStore(tmp_path / "limits")
    assert first.try_acquire("k", (Limit(1, 60.0),), 1)
    assert not second.try_acquire("k", (Limit(1, 60.0),), 1)
    with pytest.raises(ConfigurationError, match="durability"):
        LMDBStore(tmp_path / "limits", durability="sync")
    first.close()
    assert not second.try_acquire("k", (Limit(1, 60.0),), 1)  # still open for the other
    with pytest.raises(StoreClosed):
        first.try_acquire("k", (Limit(1, 60.0),), 1)
    second.close()


def test_a_foreign_lmdb_database_is_refused(tmp_path: Path) -> None:
    import lmdb

    env = lmdb.open(str(tmp_path / "foreign"))
    with env.begin(write=True) as txn:
        txn.put(b"someone", b"else's")
    env.close()
    with pytest.raises(CorruptState, match="not made by us"):
        LMDBStore(tmp_path / "foreign")


@pytest.mark.parametrize("durability", ["wal", "sync", "periodic"])
def test_every_durability_decides_and_reopens(tmp_path: Path, durability: str) -> None:
    url = f"lmdb://{tmp_path}/limits?durability={durability}&flush_interval=0.01"
    with Limiter(url) as limiter:
        assert [limiter.try_acquire("k", Limit(2, 60.0)) for _ in range(3)] == [True, True, False]
    with Limiter(url) as limiter:
        assert not limiter.try_acquire("k", Limit(2, 60.0))


# -- records, keys and the anchor at fixed instants -------------------------------------


@pytest.mark.parametrize("limit", [Limit(3, 1.0), Limit(7, 3.0), Limit(1, 1e-6), Limit(10**7, 1.0)])
def test_a_record_round_trips_exactly(limit: Limit) -> None:
    for tat in (0, 1, limit.units_per_ns * 10**18 + limit.units_per_ns - 1):
        assert tat_from_record(encode(tat, limit.units_per_ns), limit) == tat


def test_a_record_read_in_other_units_rounds_towards_waiting() -> None:
    value = encode(3, 2)  # 1.5 ns
    assert tat_from_record(value, Limit(1, 1.0)) == 2


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"x" * RECORD.size,
        RECORD.pack(2, 0, 0, 1),
        RECORD.pack(1, 0, 5, 5),
        encode(1, 1) + b"!",
    ],
)
def test_damaged_records_are_corrupt_state(value: bytes) -> None:
    with pytest.raises(CorruptState):
        tat_from_record(value, Limit(1, 1.0))


def test_record_keys_are_one_to_one_even_past_the_lmdb_key_size() -> None:
    pairs = [("n:a", b"bc"), ("n:ab", b"c"), ("n:a", b"b" * 5000), ("n:a", b"b" * 4999 + b"c")]
    keys = [record_keys(record_prefix(identity), key, 511) for identity, key in pairs]
    assert len({db_key for db_key, _ in keys}) == len(pairs)
    assert all(len(db_key) <= 511 for db_key, _ in keys)
    long_key, full = keys[2]
    with pytest.raises(CorruptState):  # a record stored for another full key is refused
        tat_from_record(encode(1, 1) + keys[3][1], Limit(1, 1.0), full)
    assert long_key.startswith(b"\x02")


def test_the_anchor_is_kept_within_a_boot_and_replaced_after_a_reboot() -> None:
    anchor, new = anchor_for(None, BOOT_A, monotonic_ns=5, wall_ns=1000)
    assert (anchor, new) == (Anchor(BOOT_A, 995), True)
    # Another process of the same boot, whose wall clock has stepped: same timeline.
    assert anchor_for(anchor.encode(), BOOT_A, monotonic_ns=9, wall_ns=10**15) == (anchor, False)
    assert anchor_for(anchor.encode(), BOOT_B, monotonic_ns=9, wall_ns=2000) == (
        Anchor(BOOT_B, 1991),
        True,
    )


def _store(path: Path, clock: FakeClock, wall_ns: int, boot: bytes) -> LMDBStore:
    return LMDBStore(path, clock=clock, wall_clock=lambda: wall_ns, boot=boot)


def test_a_wall_clock_step_within_a_boot_changes_nothing(tmp_path: Path) -> None:
    clock, limit = FakeClock(start_ns=0), (Limit(1, 60.0),)
    first = _store(tmp_path / "l", clock, 10**18, BOOT_A)
    assert first.try_acquire("k", limit, 1)
    first.close()
    second = _store(tmp_path / "l", clock, 10**18 + 3600 * SECOND, BOOT_A)  # wall jumped an hour
    assert not second.try_acquire("k", limit, 1)
    clock.advance(60)
    assert second.try_acquire("k", limit, 1)
    second.close()


def test_a_reboot_with_the_wall_clock_far_ahead_gives_at_most_a_full_bucket(
    tmp_path: Path,
) -> None:
    clock, limit = FakeClock(start_ns=0), (Limit(3, 60.0),)
    first = _store(tmp_path / "l", clock, 10**18, BOOT_A)
    assert first.acquire("k", limit, 3).allowed
    first.close()
    rebooted = _store(tmp_path / "l", FakeClock(start_ns=0), 10**18 + 10**6 * SECOND, BOOT_B)
    assert rebooted.acquire("k", limit, 1).remaining == 2  # full, never more
    rebooted.close()


def test_a_reboot_with_the_wall_clock_behind_waits_no_longer_than_an_empty_bucket(
    tmp_path: Path,
) -> None:
    clock, limit = FakeClock(start_ns=0), (Limit(3, 60.0),)
    first = _store(tmp_path / "l", clock, 10**18, BOOT_A)
    assert first.acquire("k", limit, 3).allowed
    first.close()
    later = FakeClock(start_ns=0)
    rebooted = _store(tmp_path / "l", later, 10**18 - 10**6 * SECOND, BOOT_B)  # a year behind
    denied = rebooted.acquire("k", limit, 1)
    assert not denied
    assert denied.retry_after <= 20.0 + 1e-6  # an empty bucket's wait for one token
    later.advance(20)
    assert rebooted.acquire("k", limit, 1).allowed  # and that wait comes true
    rebooted.close()


# -- growth and cleanup ---------------------------------------------------------------


def test_the_map_grows_when_full_and_no_error_reaches_the_caller(tmp_path: Path) -> None:
    store = LMDBStore(tmp_path / "l", map_size=1 << 16)
    limit = (Limit(5, 3600.0),)
    for index in range(5000):
        assert store.try_acquire(f"user-{index}-" + "x" * 40, limit, 1)
    assert store.acquire("user-0-" + "x" * 40, limit, 1).remaining == 3  # nothing was lost
    store.close()


def test_full_buckets_are_deleted(tmp_path: Path) -> None:
    clock = FakeClock()
    store = LMDBStore(tmp_path / "l", clock=clock)
    limit = (Limit(1, 1.0),)
    for index in range(2000):
        assert store.try_acquire(f"one-off-{index}", limit, 1)
    clock.advance(2)  # every one of them is full again
    for _ in range(10_000):  # traffic on one key sweeps the others away
        store.try_acquire("hot", limit, 1)
        clock.advance(1)
    store.refund("hot", limit, 1)  # refunded to full: deleted at once
    with store._env.handle().begin() as txn:
        buckets = sum(1 for key, _ in txn.cursor() if key[:1] in (b"\x01", b"\x02"))
    assert buckets == 0
    store.close()


def test_reset_and_refund_delete_the_record(tmp_path: Path) -> None:
    store = LMDBStore(tmp_path / "l")
    limit = (Limit(5, 3600.0),)
    store.acquire("a", limit, 2)
    store.acquire("b", limit, 1)
    store.reset("a", limit)
    store.refund("b", limit, 3)
    with store._env.handle().begin() as txn:
        assert [key for key, _ in txn.cursor() if key[:1] == b"\x01"] == []
    store.close()


def test_a_long_key_has_its_own_bucket(tmp_path: Path) -> None:
    with Limiter(f"lmdb://{tmp_path}/l") as limiter:
        long_a, long_b = "a" * 4096, "a" * 4095 + "b"
        assert limiter.try_acquire(long_a, Limit(1, 60.0))
        assert limiter.try_acquire(long_b, Limit(1, 60.0))
        assert not limiter.try_acquire(long_a, Limit(1, 60.0))
