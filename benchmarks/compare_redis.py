"""Redis side by side, in one run: a decision next to a raw EVALSHA and PING.

Starts its own ``redis-server`` on a free loopback port (or uses ``--url``),
then measures, with interleaved rounds and the best round of each case kept
(a noisy neighbour slows every case alike, so the ratios hold):

- PING and a raw ``EVALSHA`` of a trivial script through redis-py;
- one ``Limiter.acquire`` (a full Decision) and one ``try_acquire``;
- ``acquire_many`` of 100 requests (one pipeline) per decision;
- ``AsyncLimiter.acquire`` from 50 concurrent tasks, against one
  synchronous connection deciding one call after another;
- repeated denied calls answered by the deny cache, and without it.

It prints ns per decision, the ratios and PASS/FAIL against the bars
(docs/design.md §6): single <= 1.15x raw EVALSHA; batch of 100 >= 8x single-call
throughput; async with 50 tasks >= 2x one synchronous connection.

    python -m benchmarks.compare_redis            # about half a minute
    python -m benchmarks.compare_redis --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from bucketcore import AsyncLimiter, Limit, Limiter

ALWAYS = Limit(10**9, 1.0, burst=10**12)  # every call allowed: the allowed path
ONCE = Limit(1, 86400.0)  # denied after the first call
BATCH = 100
TASKS = 50


def _per_call_ns(run: Callable[[int], None], calls: int) -> float:
    start = time.perf_counter_ns()
    run(calls)
    return (time.perf_counter_ns() - start) / calls


def sync_cases(url: str, prefix: str, opened: list[Any]) -> dict[str, Callable[[int], None]]:
    """Each case runs ``n`` decisions (or commands) one after another.

    What it opens is appended to ``opened``, for the caller to close.
    """
    client = redis.Redis.from_url(url)
    limiter = Limiter(url, prefix=prefix + "s:")
    uncached = Limiter(url, prefix=prefix + "u:", deny_cache=False)
    opened += [client, limiter, uncached]
    trivial = client.script_load("return 1")
    acquire, try_acquire = limiter.acquire, limiter.try_acquire
    limiter.acquire("denied", ONCE)
    uncached.acquire("denied", ONCE)
    requests = [(f"k{i}", ALWAYS, 1) for i in range(BATCH)]

    def ping(n: int) -> None:
        for _ in range(n):
            client.ping()

    def evalsha(n: int) -> None:
        for _ in range(n):
            client.evalsha(trivial, 1, "k")

    def decision(n: int) -> None:
        for _ in range(n):
            acquire("hot", ALWAYS)

    def try_only(n: int) -> None:
        for _ in range(n):
            try_acquire("hot", ALWAYS)

    def batch(n: int) -> None:
        for _ in range(max(1, n // BATCH)):
            limiter.acquire_many(requests)

    def denied_cached(n: int) -> None:
        for _ in range(n):
            acquire("denied", ONCE)

    def denied_uncached(n: int) -> None:
        for _ in range(n):
            uncached.acquire("denied", ONCE)

    return {
        "PING": ping,
        "raw EVALSHA (trivial script)": evalsha,
        "acquire (one decision)": decision,
        "try_acquire": try_only,
        f"acquire_many of {BATCH}, per decision": batch,
        "denied, deny cache": denied_cached,
        "denied, no deny cache": denied_uncached,
    }


def async_case(url: str, prefix: str) -> Callable[[int], None]:
    """``n`` decisions spread over 50 concurrent tasks of one AsyncLimiter."""

    def run(n: int) -> None:
        async def main() -> None:
            async with AsyncLimiter(url, prefix=prefix + "a:") as limiter:
                await limiter.acquire("warm", ALWAYS)
                per_task = max(1, n // TASKS)

                async def task(index: int) -> None:
                    key = f"t{index}"
                    for _ in range(per_task):
                        await limiter.acquire(key, ALWAYS)

                await asyncio.gather(*(task(i) for i in range(TASKS)))

        asyncio.run(main())

    return run


def measure(url: str, rounds: int, calls: int) -> dict[str, float]:
    prefix = f"bench{time.time_ns()}:"
    opened: list[Any] = []
    try:
        cases = sync_cases(url, prefix, opened)
        cases[f"AsyncLimiter, {TASKS} tasks"] = async_case(url, prefix)
        for run in cases.values():  # warm up: connections, script cache
            run(min(calls, 200))
        best = dict.fromkeys(cases, float("inf"))
        for _ in range(rounds):
            for name, run in cases.items():
                n = calls * 2 if name.startswith("AsyncLimiter") else calls
                if name.startswith("acquire_many"):
                    n = max(n, BATCH * 20)
                best[name] = min(best[name], _per_call_ns(run, n))
        return best
    finally:
        for thing in opened:
            thing.close()


def bars(times: dict[str, float]) -> list[tuple[str, float, str, bool]]:
    single = times["acquire (one decision)"]
    raw = times["raw EVALSHA (trivial script)"]
    batch = times[f"acquire_many of {BATCH}, per decision"]
    async_ns = times[f"AsyncLimiter, {TASKS} tasks"]
    return [
        ("one decision / raw EVALSHA", single / raw, "<= 1.15", single / raw <= 1.15),
        (f"batch of {BATCH} throughput / single", single / batch, ">= 8", single / batch >= 8),
        (
            f"async {TASKS} tasks throughput / sync",
            single / async_ns,
            ">= 2",
            single / async_ns >= 2,
        ),
    ]


def _start_server(directory: Path) -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.redis_servers import RedisProcess, find_server

    binary = find_server("redis") or find_server("valkey")
    if binary is None:
        raise SystemExit("no redis-server found: install one or pass --url")
    server = RedisProcess(binary, directory)
    server.start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, rougher numbers")
    parser.add_argument("--url", help="an existing Redis to use (default: start one)")
    args = parser.parse_args(argv)
    rounds, calls = (3, 500) if args.quick else (15, 1500)
    server = None
    workdir = tempfile.mkdtemp(prefix="bucketcore-bench-")
    try:
        url = args.url
        if url is None:
            server = _start_server(Path(workdir))
            url = server.url
        times = measure(url, rounds, calls)
    finally:
        if server is not None:
            server.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"Redis decisions ({'quick' if args.quick else 'full'} run, best of {rounds} rounds)")
    width = max(map(len, times))
    for name, ns in times.items():
        print(f"  {name:<{width}}  {ns:>10,.0f} ns/decision")
    ok = True
    print("Bars")
    for label, ratio, bar, passed in bars(times):
        ok &= passed
        print(f"  {label:<40} {ratio:6.2f}x  (bar {bar})  {'PASS' if passed else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
