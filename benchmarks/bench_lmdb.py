"""pytest-benchmark cases for lmdb://, next to memory:// and pyrate-limiter's SQLite bucket.

    python -m pytest benchmarks/bench_lmdb.py --benchmark-enable

For the side-by-side ratios against the bars, run
``python -m benchmarks.compare --only lmdb,processes`` instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.contenders import make_pyrate_sqlite
from bucketcore import Limit, Limiter

# Never denies and never refills to full during a run: each call decides and writes.
ALWAYS = Limit(1000, 1.0, burst=10**10)


@pytest.fixture(params=["memory", "wal", "periodic", "sync"])
def limiter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Limiter]:
    if request.param == "memory":
        made = Limiter("memory://")
    else:
        made = Limiter(f"lmdb://{tmp_path}/db?durability={request.param}")
    try:
        yield made
    finally:
        made.close()


def test_try_acquire_one_hot_key(benchmark: BenchmarkFixture, limiter: Limiter) -> None:
    assert benchmark(limiter.try_acquire, "hot", ALWAYS)


def test_acquire_one_hot_key(benchmark: BenchmarkFixture, limiter: Limiter) -> None:
    assert benchmark(limiter.acquire, "hot", ALWAYS).allowed


def test_pyrate_sqlite_bucket_with_its_file_lock(
    benchmark: BenchmarkFixture, tmp_path: Path
) -> None:
    decide = make_pyrate_sqlite(str(tmp_path / "pyrate.sqlite"))
    try:
        assert benchmark(decide, "hot")
    finally:
        decide.close()  # type: ignore[attr-defined]
