"""Redis under load, in real time: many processes, steady traffic, faults.

Real time is the point here (the server's clock decides), so the bounds are
generous; no test asserts how long anything took.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from typing import Any

import pytest
import redis

from bucketcore import Limit, Limiter
from bucketcore.backends.redis import SCRIPT_SHA
from bucketcore.errors import StoreUnavailable
from support.servers import RedisCluster3, RedisProcess

pytestmark = pytest.mark.redis

# Refills one token per 500 s: a test's duration adds nothing to the burst.
HOARD = Limit(2000, 1_000_000.0)


def _hammer(url: str, prefix: str, threads: int, attempts: int, start: Any) -> int:
    """One worker process: ``threads`` threads each try ``attempts`` times."""
    with Limiter(url, prefix=prefix, deny_cache=False) as limiter:
        limiter.peek("shared", HOARD)  # connected and ready
        start.wait(60)  # every process starts hammering at once

        def run() -> int:
            return sum(limiter.try_acquire("shared", HOARD) for _ in range(attempts))

        with ThreadPoolExecutor(threads) as pool:
            return sum(pool.map(lambda _: run(), range(threads)))


@pytest.mark.parametrize("where", ["redis", "cluster"])
def test_four_processes_of_eight_threads_get_exactly_the_burst(
    where: str, redis_server: RedisProcess, redis_cluster: RedisCluster3, redis_prefix: str
) -> None:
    url = redis_server.url if where == "redis" else redis_cluster.url
    context = get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(4, mp_context=context) as pool:
        start = manager.Barrier(4)
        granted = list(
            pool.map(_hammer, [url] * 4, [redis_prefix] * 4, [8] * 4, [90] * 4, [start] * 4)
        )
    assert sum(granted) == 2000  # 2880 attempts, one shared burst
    assert all(count > 0 for count in granted)  # every process really took part


def _steady(limiter: Limiter, limit: Limit, seconds: float) -> tuple[int, float, float]:
    """Call about once a millisecond; the granted count and two bounds on the server's time.

    The server decided the first call between ``start`` and ``first_done``
    and the last between ``last_sent`` and ``end``: so the time it saw pass
    is at least ``last_sent - first_done`` and at most ``end - start``.
    """
    start = time.monotonic()
    granted = int(limiter.try_acquire("steady", limit))
    first_done = last_sent = end = time.monotonic()
    while end - start < seconds:
        time.sleep(0.001)
        last_sent = time.monotonic()
        granted += limiter.try_acquire("steady", limit)
        end = time.monotonic()
    return granted, last_sent - first_done, end - start


def _assert_exact(limit: Limit, granted: int, inner: float, outer: float) -> None:
    """docs/design.md §3: at most burst + rate * t, at least that minus one."""
    assert limit.burst + limit.rate * inner - 1 <= granted, (limit, granted, inner)
    assert granted <= limit.burst + limit.rate * outer, (limit, granted, outer)


@pytest.mark.parametrize("deny_cache", [False, True], ids=["script", "deny-cache"])
def test_steady_traffic_at_slow_rates_gets_burst_plus_rate_times_elapsed(
    redis_server: RedisProcess, redis_prefix: str, deny_cache: bool
) -> None:
    """One call per millisecond for 3 s: fractions of a token must carry over."""
    limits = [Limit(5, 1.0, burst=1), Limit(1, 2.0, burst=1)]  # 5/s and 0.5/s, burst 1
    limiters = [
        Limiter(redis_server.url, prefix=f"{redis_prefix}{i}:", deny_cache=deny_cache)
        for i in range(len(limits))
    ]
    try:
        with ThreadPoolExecutor(len(limits)) as pool:
            results = list(pool.map(_steady, limiters, limits, [3.0] * len(limits)))
    finally:
        for limiter in limiters:
            limiter.close()
    for limit, (granted, inner, outer) in zip(limits, results, strict=True):
        _assert_exact(limit, granted, inner, outer)


@pytest.mark.slow
def test_steady_traffic_for_longer_at_awkward_rates(
    redis_server: RedisProcess, redis_prefix: str
) -> None:
    """15 s at rates whose emission intervals are no whole number of microseconds."""
    limits = [Limit(7, 3.0, burst=2), Limit(1, 2.0, burst=1), Limit(3, 7.0, burst=1)]
    limiters = [
        Limiter(redis_server.url, prefix=f"{redis_prefix}{i}:", deny_cache=i % 2 == 0)
        for i in range(len(limits))
    ]
    try:
        with ThreadPoolExecutor(len(limits)) as pool:
            results = list(pool.map(_steady, limiters, limits, [15.0] * len(limits)))
    finally:
        for limiter in limiters:
            limiter.close()
    for limit, (granted, inner, outer) in zip(limits, results, strict=True):
        _assert_exact(limit, granted, inner, outer)


# -- faults ----------------------------------------------------------------------


class _Load:
    """Threads calling ``acquire`` in a loop, counting what happens."""

    def __init__(self, limiter: Limiter, limit: Limit, threads: int = 4) -> None:
        self.limiter = limiter
        self.limit = limit
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.allowed = 0
        self.degraded = 0
        self.errors: list[BaseException] = []
        self.calls = 0
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                decision = self.limiter.acquire("load", self.limit)
            except StoreUnavailable as exc:
                with self.lock:
                    self.errors.append(exc)
                    self.calls += 1
                time.sleep(0.005)
                continue
            except BaseException as exc:  # anything else fails the test below
                with self.lock:
                    self.errors.append(exc)
                raise
            with self.lock:
                self.calls += 1
                self.allowed += decision.allowed and not decision.degraded
                self.degraded += decision.degraded

    def __enter__(self) -> _Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in self.threads), "a call hung"

    def wait_for(self, predicate: Any, what: str) -> None:
        deadline = time.monotonic() + 30
        while not predicate():
            assert time.monotonic() < deadline, f"gave up waiting for {what}"
            time.sleep(0.01)


def _private_limiter(server: RedisProcess, **options: Any) -> Limiter:
    return Limiter(server.url, timeout=0.5, connect_timeout=0.5, connect_retries=0, **options)


def test_a_killed_server_raises_store_unavailable_and_a_restart_resumes(
    redis_process_factory: Any,
) -> None:
    server = redis_process_factory()
    server.start()
    with _private_limiter(server, deny_cache=False) as limiter:
        load = _Load(limiter, Limit(10**6, 1.0))
        with load:
            load.wait_for(lambda: load.allowed > 100, "decisions before the kill")
            server.kill()
            load.wait_for(lambda: len(load.errors) > 20, "StoreUnavailable after the kill")
            server.start()  # same port, empty, no script loaded: NOSCRIPT on first use
            before = load.allowed
            load.wait_for(lambda: load.allowed > before + 100, "decisions after the restart")
        assert all(isinstance(error, StoreUnavailable) for error in load.errors)
        assert all(
            isinstance(error.__cause__, redis.exceptions.RedisError | OSError)
            for error in load.errors
        )


def test_a_frozen_server_times_out_into_store_unavailable(redis_process_factory: Any) -> None:
    server = redis_process_factory()
    server.start()
    limit = Limit(10, 60.0)
    # No breaker: the call right after the thaw goes to Redis.
    with Limiter(server.url, timeout=0.3, connect_retries=0, breaker_cooldown=0) as limiter:
        assert limiter.acquire("k", limit)
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            with pytest.raises(StoreUnavailable) as caught:
                limiter.acquire("k", limit)
            assert isinstance(caught.value.__cause__, redis.exceptions.TimeoutError)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        # The timed-out call may or may not have been charged: it is never re-sent.
        assert limiter.acquire("k", limit).remaining in (7, 8)


@pytest.mark.parametrize("policy", ["allow", "deny"])
def test_a_killed_server_gives_degraded_decisions_logged_once(
    redis_process_factory: Any, policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_process_factory()
    server.start()
    with (
        caplog.at_level(logging.WARNING, logger="bucketcore.redis"),
        _private_limiter(server, on_error=policy, deny_cache=False) as limiter,
    ):
        load = _Load(limiter, Limit(10**6, 1.0))
        with load:
            load.wait_for(lambda: load.allowed > 100, "decisions before the kill")
            server.kill()
            load.wait_for(lambda: load.degraded > 200, "degraded decisions")
            server.start()
            before = load.allowed
            load.wait_for(lambda: load.allowed > before + 100, "exact decisions again")
        assert load.errors == []
        assert limiter.acquire("after", Limit(5, 60.0)).degraded is False
    messages = [record.getMessage() for record in caplog.records]
    assert sum("unavailable" in message for message in messages) == 1
    assert sum("reachable again" in message for message in messages) == 1
    assert f"on_error={policy}" in messages[0]


def test_script_flush_mid_load_neither_fails_nor_charges_twice(
    redis_server: RedisProcess, redis_prefix: str
) -> None:
    limit = Limit(300, 1_000_000.0)
    flusher = redis.Redis(port=redis_server.port)
    stop = threading.Event()
    flushes = [0]

    def flush() -> None:
        while not stop.is_set():
            flusher.script_flush()
            flushes[0] += 1
            time.sleep(0.002)

    with Limiter(redis_server.url, prefix=redis_prefix, deny_cache=False) as limiter:

        def take(_: int) -> int:
            granted = 0
            for _ in range(60):
                granted += limiter.try_acquire("flushed", limit)
                granted += sum(d.allowed for d in limiter.acquire_many([("flushed", limit, 1)] * 3))
            return granted

        background = threading.Thread(target=flush)
        background.start()
        try:
            with ThreadPoolExecutor(4) as pool:
                granted = sum(pool.map(take, range(4)))
        finally:
            stop.set()
            background.join()
    flusher.close()
    assert flushes[0] > 5
    assert granted == 300  # 960 attempts; no call failed and none charged twice


def test_a_killed_cluster_master_raises_store_unavailable(
    redis_cluster: RedisCluster3, redis_prefix: str
) -> None:
    """Only on a private key set: the session cluster must survive, so nothing is killed.

    A frozen master (SIGSTOP) stands in for a dead one, then thaws.
    """
    url = f"{redis_cluster.url}?prefix={redis_prefix}&timeout=0.3"
    with Limiter(url, deny_cache=False) as limiter:
        limit = Limit(10, 3600.0)
        store: Any = limiter.store
        victim_port = store.client.get_node_from_key(b"victim").port
        victim = next(node for node in redis_cluster.nodes if node.port == victim_port)
        assert limiter.acquire("victim", limit)
        assert victim.process is not None
        os.kill(victim.process.pid, signal.SIGSTOP)
        try:
            with pytest.raises(StoreUnavailable):
                limiter.acquire("victim", limit)
        finally:
            os.kill(victim.process.pid, signal.SIGCONT)
        deadline = time.monotonic() + 30
        while True:
            try:
                decision = limiter.acquire("victim", limit)
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert decision.remaining in (7, 8)  # the timed-out call was never re-sent


def test_a_promoted_replica_has_every_bucket_and_loads_the_script(
    redis_process_factory: Any,
) -> None:
    """Failover: the writes replicate (effects, not the script), NOSCRIPT loads it there."""
    primary = redis_process_factory()
    primary.start()
    replica = redis_process_factory("--replicaof", "127.0.0.1", str(primary.port))
    replica.start()
    limit = Limit(10, 3600.0)
    watcher = redis.Redis(port=replica.port)
    with Limiter(primary.url, deny_cache=False) as limiter:
        assert limiter.acquire("k", limit, cost=3).remaining == 7
        limiter.refund("k", limit)
        assert limiter.acquire("k", limit, cost=2).remaining == 6
        deadline = time.monotonic() + 30
        while watcher.info("replication").get("master_link_status") != "up" or not watcher.exists(
            limiter.store.calls.keys("k", (limit,))[0]  # type: ignore[attr-defined]
        ):
            assert time.monotonic() < deadline, "the replica never caught up"
            time.sleep(0.05)
        primary.kill()
    watcher.execute_command("REPLICAOF", "NO", "ONE")
    assert not watcher.script_exists(SCRIPT_SHA)[0]  # only the effects were replicated
    watcher.close()
    with Limiter(replica.url, deny_cache=False) as limiter:
        assert limiter.acquire("k", limit).remaining == 5
