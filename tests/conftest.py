"""Shared fixtures: a fake clock, and the ``limiter`` every contract test runs on.

Backends join the contract suite by adding a factory to ``CONTRACT_BACKENDS``.
Each factory gets the pytest ``request`` and ``tmp_path`` and returns a
fresh ``Limiter`` on its own empty state.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bucketcore import Limiter
from tests.redis_servers import (  # noqa: F401 - fixtures are found by name
    redis_cluster,
    redis_prefix,
    redis_process_factory,
    redis_server,
    valkey_server,
)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


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
