"""pytest-benchmark: every backend on the same workloads, one group per workload.

    pytest benchmarks/bench_backends.py --benchmark-enable

Each benchmark round makes 100 decisions, so one group compares like with
like: memory vs RocksDB (``wal``, ``sync``, ``periodic``) vs Redis (single
calls, one ``acquire_many`` of 100, ``AsyncLimiter`` with 50 tasks) vs Redis
Cluster. In the default test run (benchmarking disabled) each runs once.
Backends whose extra or server is missing are skipped (failed under CI, by
the Redis fixtures).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.contenders import DENIED, SHARED_IN_USE, Policy
from bucketcore import AsyncLimiter, Limiter

BATCH = 100
TASKS = 50
KEYS = [f"user-{i}" for i in range(100_000)]

Run = Callable[[list[str]], object]

WORKLOADS: dict[str, tuple[Policy, Callable[[], Iterator[list[str]]]]] = {
    "one hot key, allowed": (SHARED_IN_USE, lambda: itertools.repeat(["hot"] * BATCH)),
    "100k keys round-robin, allowed": (
        SHARED_IN_USE,
        lambda: (KEYS[i : i + BATCH] for i in itertools.cycle(range(0, len(KEYS), BATCH))),
    ),
    "one hot key, denied": (DENIED, lambda: itertools.repeat(["spent"] * BATCH)),
}


def _single(limiter: Limiter, policy: Policy) -> Run:
    limit, acquire = policy.limit(), limiter.acquire

    def run(keys: list[str]) -> object:
        for key in keys:
            acquire(key, limit)
        return None

    return run


def _batch(limiter: Limiter, policy: Policy) -> Run:
    limit = policy.limit()
    return lambda keys: limiter.acquire_many([(key, limit, 1) for key in keys])


class _Async:
    """An AsyncLimiter on its own event loop, deciding a batch from TASKS tasks."""

    def __init__(self, url: str, policy: Policy) -> None:
        self.loop = asyncio.new_event_loop()
        self.limit = policy.limit()

        async def opened() -> AsyncLimiter:
            return AsyncLimiter(url)

        self.limiter = self.loop.run_until_complete(opened())

    async def _worker(self, keys: list[str]) -> None:
        for key in keys:
            await self.limiter.acquire(key, self.limit)

    async def _all(self, keys: list[str]) -> None:
        await asyncio.gather(*(self._worker(keys[i::TASKS]) for i in range(TASKS)))

    def __call__(self, keys: list[str]) -> object:
        return self.loop.run_until_complete(self._all(keys))

    def close(self) -> None:
        self.loop.run_until_complete(self.limiter.close())
        self.loop.close()


BACKENDS = [
    "memory",
    "rocksdb-wal",
    "rocksdb-sync",
    "rocksdb-periodic",
    "redis",
    "redis-acquire_many",
    "redis-async",
    "cluster",
]


def _open(backend: str, request: pytest.FixtureRequest, tmp_path: Path, policy: Policy) -> Any:
    """(run, close) for a backend; skips when its extra or server is missing."""
    if backend == "memory":
        limiter = Limiter("memory://")
        return _single(limiter, policy), limiter.close
    if backend.startswith("rocksdb"):
        pytest.importorskip("bucketcore.backends.rocksdb")
        durability = backend.split("-", 1)[1]
        limiter = Limiter(f"rocksdb://{tmp_path / 'db'}?durability={durability}")
        return _single(limiter, policy), limiter.close
    pytest.importorskip("bucketcore.backends.redis")
    prefix = request.getfixturevalue("redis_prefix")
    if backend == "cluster":
        url = request.getfixturevalue("redis_cluster").url
        limiter = Limiter(f"{url}?prefix={prefix}")
        return _single(limiter, policy), limiter.close
    url = f"{request.getfixturevalue('redis_server').url}?prefix={prefix}"
    if backend == "redis-async":
        run = _Async(url, policy)
        return run, run.close
    limiter = Limiter(url)
    maker = _batch if backend == "redis-acquire_many" else _single
    return maker(limiter, policy), limiter.close


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_100_decisions(
    benchmark: Any, request: pytest.FixtureRequest, tmp_path: Path, workload: str, backend: str
) -> None:
    policy, batches = WORKLOADS[workload]
    run, close = _open(backend, request, tmp_path, policy)
    benchmark.group = f"100 decisions: {workload}"
    keys = batches()
    try:
        run(["spent"])  # the denied workload's one token
        benchmark(lambda: run(next(keys)))
    finally:
        close()
