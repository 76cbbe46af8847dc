"""Redis stalled: how fast calls answer once the circuit breaker is open.

A real redis-server sits behind the fault proxy (``support/faultproxy.py``).
Each round opens a fresh limiter through the proxy with the default
options, decides once while the network is healthy, then stalls it (the
server accepts and reads but never answers). The first call waits for its
timeout and opens the breaker; the 500 calls after it are timed one by one.
The bar is absolute (docs/design.md §6: p99 at most 5 ms), so this group
reports percentiles, not per-decision means: each row's ``ns`` is the p99
of its calls over every round. The healthy row (the same 500 calls through
the proxy, not stalled) is the reference.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from benchmarks import bars
from benchmarks.harness import BUCKETCORE, FLOOR, Group, Sizes, progress
from benchmarks.suite_redis import prefixed
from bucketcore import Limit, Limiter
from support.faultproxy import FaultProxy
from support.servers import Servers

CALLS = 500  # timed calls per round, after the first failure
HEALTHY = "bucketcore redis acquire through the proxy, healthy (p99)"
FIRST_FAILURE = "the first call after the stall (one timeout; max)"
STALLED = {
    "allow": bars.REDIS_STALLED_ALLOW,
    "local": bars.REDIS_STALLED_LOCAL,
}
_LIMIT = Limit(10**6, 1.0)


def percentile(samples: list[int], fraction: float) -> int:
    """The ``fraction`` percentile of ``samples`` (nearest rank, from below).

    >>> percentile(list(range(1, 501)), 0.99)
    496
    """
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _timed(decide: Callable[[], object], count: int) -> list[int]:
    samples = []
    for _ in range(count):
        started = time.perf_counter_ns()
        decide()
        samples.append(time.perf_counter_ns() - started)
    return samples


def _round(proxy: FaultProxy, on_error: str) -> tuple[list[int], int]:
    """One fresh limiter stalled: (the calls after the first failure, the first failure)."""
    proxy.mode = "pass"
    with Limiter(prefixed(proxy.url, on_error=on_error)) as limiter:
        if limiter.acquire("k", _LIMIT).degraded:
            raise RuntimeError("the healthy proxy did not reach Redis")
        proxy.mode = "stall"
        started = time.perf_counter_ns()
        if not limiter.acquire("k", _LIMIT).degraded:
            raise RuntimeError("the stalled proxy answered")
        first = time.perf_counter_ns() - started
        samples = _timed(lambda: limiter.acquire("k", _LIMIT), CALLS)
        proxy.mode = "pass"
    return samples, first


def _healthy(proxy: FaultProxy) -> list[int]:
    proxy.mode = "pass"
    with Limiter(prefixed(proxy.url)) as limiter:
        limiter.acquire("k", _LIMIT)
        return _timed(lambda: limiter.acquire("k", _LIMIT), CALLS)


def run(servers: Servers, sizes: Sizes) -> list[Group]:
    """The ``redis.stalled`` group: p99 per case over ``sizes.rounds`` rounds."""
    title = f"redis stalled: {CALLS} calls after the first failure, default options"
    progress(f"  redis: {title}")
    healthy: list[int] = []
    stalled: dict[str, list[int]] = {on_error: [] for on_error in STALLED}
    first: list[int] = []
    log = logging.getLogger("bucketcore.redis")
    level, log.level = log.level, logging.ERROR  # each round's outage would log twice
    try:
        with FaultProxy(servers.standalone.port) as proxy:
            for _ in range(sizes.rounds):
                healthy += _healthy(proxy)
                for on_error, samples in stalled.items():
                    after, failure = _round(proxy, on_error)
                    samples += after
                    first.append(failure)
    finally:
        log.setLevel(level)
    group = Group(
        "redis.stalled",
        title,
        "redis",
        HEALTHY,
        unit="ns (p99 per call)",
        note=(
            f"p99 of {CALLS} calls per round over {sizes.rounds} round(s); the median "
            "is in each row; the first failure is the slowest of the rounds"
        ),
    )
    group.add(HEALTHY, FLOOR, percentile(healthy, 0.99), median_ns=percentile(healthy, 0.5))
    for on_error, samples in stalled.items():
        group.add(
            STALLED[on_error],
            BUCKETCORE,
            percentile(samples, 0.99),
            median_ns=percentile(samples, 0.5),
        )
    group.add(FIRST_FAILURE, BUCKETCORE, max(first))
    return [group]
