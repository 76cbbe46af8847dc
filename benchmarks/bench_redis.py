"""pytest-benchmark suite for Redis: ``pytest benchmarks/bench_redis.py --benchmark-enable``.

Starts its own redis-server (benchmarks/conftest.py, from support/servers.py).
For the side-by-side bars in one run: ``python -m benchmarks.compare --only redis``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis

from bucketcore import AsyncLimiter, Limit, Limiter
from support.servers import RedisProcess

ALWAYS = Limit(10**7, 1.0, burst=10**12)
ONCE = Limit(1, 86400.0)


@pytest.fixture
def limiter(redis_server: RedisProcess, redis_prefix: str) -> Iterator[Limiter]:
    made = Limiter(redis_server.url, prefix=redis_prefix)
    yield made
    made.close()


@pytest.fixture
def client(redis_server: RedisProcess) -> Iterator[redis.Redis]:
    made = redis.Redis(port=redis_server.port)
    yield made
    made.close()


@pytest.mark.benchmark(group="redis: one call")
def test_ping(benchmark, client: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    benchmark(client.ping)


@pytest.mark.benchmark(group="redis: one call")
def test_raw_evalsha_trivial(benchmark, client: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    sha = client.script_load("return 1")
    benchmark(client.evalsha, sha, 1, "k")


@pytest.mark.benchmark(group="redis: one call")
def test_acquire(benchmark, limiter: Limiter) -> None:  # type: ignore[no-untyped-def]
    benchmark(limiter.acquire, "hot", ALWAYS)


@pytest.mark.benchmark(group="redis: one call")
def test_try_acquire(benchmark, limiter: Limiter) -> None:  # type: ignore[no-untyped-def]
    benchmark(limiter.try_acquire, "hot", ALWAYS)


@pytest.mark.benchmark(group="redis: one call")
def test_acquire_two_limits(benchmark, limiter: Limiter) -> None:  # type: ignore[no-untyped-def]
    benchmark(limiter.acquire, "hot", ALWAYS, Limit(10**11, 86400.0))


@pytest.mark.benchmark(group="redis: denied")
def test_denied_with_deny_cache(benchmark, limiter: Limiter) -> None:  # type: ignore[no-untyped-def]
    limiter.acquire("spent", ONCE)
    benchmark(limiter.acquire, "spent", ONCE)


@pytest.mark.benchmark(group="redis: denied")
def test_denied_without_deny_cache(  # type: ignore[no-untyped-def]
    benchmark, redis_server: RedisProcess, redis_prefix: str
) -> None:
    with Limiter(redis_server.url, prefix=redis_prefix, deny_cache=False) as limiter:
        limiter.acquire("spent", ONCE)
        benchmark(limiter.acquire, "spent", ONCE)


@pytest.mark.benchmark(group="redis: batch of 100")
def test_acquire_many_100(benchmark, limiter: Limiter) -> None:  # type: ignore[no-untyped-def]
    requests = [(f"k{i}", ALWAYS, 1) for i in range(100)]
    benchmark(limiter.acquire_many, requests)


@pytest.mark.benchmark(group="redis: async, 50 tasks x 20 calls")
def test_async_50_tasks(  # type: ignore[no-untyped-def]
    benchmark, redis_server: RedisProcess, redis_prefix: str
) -> None:
    async def burst(limiter: AsyncLimiter) -> None:
        async def task(index: int) -> None:
            for _ in range(20):
                await limiter.acquire(f"t{index}", ALWAYS)

        await asyncio.gather(*(task(i) for i in range(50)))

    loop = asyncio.new_event_loop()
    limiter = AsyncLimiter(redis_server.url, prefix=redis_prefix)
    try:
        benchmark(lambda: loop.run_until_complete(burst(limiter)))
    finally:
        loop.run_until_complete(limiter.close())
        loop.close()
