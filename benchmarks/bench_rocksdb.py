"""pytest-benchmark cases for rocksdb://, next to memory:// and a bare synced put.

    python -m pytest benchmarks/bench_rocksdb.py --benchmark-enable

For the side-by-side ratios against the bars, run
``python -m benchmarks.compare --only rocksdb`` instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import rocksdict
from pytest_benchmark.fixture import BenchmarkFixture

from bucketcore import Limit, Limiter

# Never denies and never refills to full during a run: each call decides and writes.
ALWAYS = Limit(1000, 1.0, burst=10**10)
RECORD = b"\x01" + bytes(24)  # a record's size


@pytest.fixture(params=["memory", "wal", "periodic", "sync"])
def limiter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Limiter]:
    if request.param == "memory":
        made = Limiter("memory://")
    else:
        made = Limiter(f"rocksdb://{tmp_path}/db?durability={request.param}")
    try:
        yield made
    finally:
        made.close()


def test_try_acquire_one_hot_key(benchmark: BenchmarkFixture, limiter: Limiter) -> None:
    assert benchmark(limiter.try_acquire, "hot", ALWAYS)


def test_acquire_one_hot_key(benchmark: BenchmarkFixture, limiter: Limiter) -> None:
    assert benchmark(limiter.acquire, "hot", ALWAYS).allowed


def test_naive_fsync_per_put(benchmark: BenchmarkFixture, tmp_path: Path) -> None:
    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(True)
    db = rocksdict.Rdict(str(tmp_path / "naive"), options)
    synced = rocksdict.WriteOptions()
    synced.sync = True
    try:
        benchmark(db.put, b"\x01hot", RECORD, synced)
    finally:
        db.close()
