"""redis+sentinel:// against real sentinels (support/servers.py RedisSentinels): failovers.

A master, its replica and three sentinels per test (each test fails over).
Real time is the point: the sentinels need a second or two to agree.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from bucketcore import AsyncLimiter, Limit, Limiter
from bucketcore.backends.redis.sentinel import read_sentinel_url
from bucketcore.errors import ConfigurationError, StoreUnavailable
from support import servers
from support.servers import RedisSentinels

pytestmark = pytest.mark.redis


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[RedisSentinels]:
    binary = servers.require()
    with servers.running(RedisSentinels(binary, tmp_path / "sentinels")) as group:
        yield group


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://:s3cret@h1,h2",
        "redis+sentinel://:s3cret@h1:x/svc",
        "redis+sentinel://:s3cret@h1/svc/db",
        "redis+sentinel://:s3cret@,h2/svc",
    ],
)
def test_bad_sentinel_urls_are_refused_without_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Limiter(url)
    assert "s3cret" not in str(caught.value)


def test_sentinel_urls_name_the_masters_user_and_password() -> None:
    assert read_sentinel_url(urlsplit("rediss+sentinel://me:pw@[::1]:5,h/svc")) == (
        [("::1", 5), ("h", 26379)],
        "svc",
        None,
        "me",
        "pw",
    )


def _wait_for(predicate: Any, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


class _Load:
    """Threads taking one token each from a 50-token bucket, a call every few ms."""

    def __init__(self, limiter: Limiter, limit: Limit) -> None:
        self.limiter, self.limit = limiter, limit
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.granted = self.denied = self.degraded = 0
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(4)]

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                decision = self.limiter.acquire("k", self.limit)
            except Exception as exc:
                with self.lock:
                    self.errors.append(exc)
            else:
                with self.lock:
                    self.granted += decision.allowed
                    self.denied += not decision.allowed
            time.sleep(0.004)

    def __enter__(self) -> _Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


@pytest.mark.parametrize("how", ["sentinel-failover", "frozen-master", "kill-9"])
def test_a_failover_mid_load_resumes_without_deciding_on_the_old_master(
    sentinels: RedisSentinels, redis_prefix: str, how: str
) -> None:
    """77 of 50 with a plain client; here every grant is counted once, on one master."""
    limit = Limit(50, 3600.0)
    url = f"{sentinels.url}?prefix={redis_prefix}&timeout=0.3&deny_cache=false"
    old = sentinels.master
    with Limiter(url) as limiter:
        for _ in range(20):
            assert limiter.acquire("k", limit).allowed
        _wait_for(lambda: _replicated(sentinels), "the replica to catch up")
        with _Load(limiter, limit) as load:
            time.sleep(0.1)
            assert old.process is not None
            if how == "sentinel-failover":
                sentinel = redis.Redis(port=sentinels.sentinels[1].port)
                sentinel.execute_command("SENTINEL", "FAILOVER", sentinels.service)
                sentinel.close()
            elif how == "frozen-master":
                os.kill(old.process.pid, signal.SIGSTOP)
            else:
                old.kill()
            _wait_for(lambda: sentinels.master_port() == sentinels.replica.port, "the failover")
            if how == "frozen-master":
                os.kill(old.process.pid, signal.SIGCONT)  # it wakes up believing it is master
            _wait_for(lambda: load.denied > 20, "decisions on the new master")
        assert all(isinstance(error, StoreUnavailable) for error in load.errors), load.errors
        assert 20 + load.granted <= 50 + 1  # at most one charge lost to asynchronous replication
        new = redis.Redis(port=sentinels.replica.port)
        assert new.execute_command("ROLE")[0] == b"master"
        new.close()
        assert _eventually(lambda: limiter.peek("k", limit)).allowed is False


def _eventually(call: Any) -> Any:
    """``call()`` once the breaker lets it through (it may be open right after a failover)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return call()
        except StoreUnavailable:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def _replicated(group: RedisSentinels) -> bool:
    master = redis.Redis(port=group.master.port)
    replica = redis.Redis(port=group.replica.port)
    try:
        offset = master.info("replication")["master_repl_offset"]
        return bool(replica.info("replication").get("slave_repl_offset", -1) >= offset)
    finally:
        master.close()
        replica.close()


def test_async_sentinel_follows_a_failover(sentinels: RedisSentinels, redis_prefix: str) -> None:
    limit = Limit(10, 3600.0)
    url = f"{sentinels.url}?prefix={redis_prefix}&timeout=0.3&deny_cache=false"

    async def scenario() -> None:
        async with AsyncLimiter(url) as limiter:
            assert (await limiter.acquire("k", limit, cost=4)).remaining == 6
            await asyncio.to_thread(_wait_for, lambda: _replicated(sentinels), "replication")
            sentinel = redis.Redis(port=sentinels.sentinels[0].port)
            sentinel.execute_command("SENTINEL", "FAILOVER", sentinels.service)
            sentinel.close()
            await asyncio.to_thread(
                _wait_for, lambda: sentinels.master_port() == sentinels.replica.port, "failover"
            )
            deadline = time.monotonic() + 30
            while True:
                try:
                    decision = await limiter.acquire("k", limit)
                    break
                except StoreUnavailable:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.05)
            assert decision.remaining == 5  # on the new master, which has the old charges

    asyncio.run(scenario())
