"""Footprint in memory: bytes per resident bucket, by ``tracemalloc``.

Each library gets ``N`` distinct keys (already allocated, so the key strings
themselves are not counted, only what the library keeps per key), one
allowed call each, with buckets that stay in use. The Redis rows
(``redis_rows``: ``MEMORY USAGE`` summed over each library's keys) run with
the redis suite, and the RocksDB rows (on disk, after compaction) come
from its suite.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

from benchmarks import contenders
from benchmarks.contenders import IN_USE, SHARED_IN_USE
from benchmarks.harness import BUCKETCORE, PEER, Decide, Sizes, progress
from benchmarks.suite_redis import prefixed
from bucketcore import Limiter

SUITE = "footprint"


def bytes_per_bucket(make: Any, keys: list[str]) -> float:
    """Traced bytes the decider holds after one call per key, per key."""
    gc.collect()
    tracemalloc.start()
    try:
        decide = make()
        decide("warm-up")  # the library's first-use allocations are not per key
        before = tracemalloc.get_traced_memory()[0]
        for key in keys:
            decide(key)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    closer = getattr(decide, "close", None)
    if callable(closer):
        closer()
    return (after - before) / len(keys)


def run(sizes: Sizes) -> list[dict[str, Any]]:
    count = sizes.footprint_keys
    progress(f"  {SUITE}: {count:,} buckets per library in memory (tracemalloc)")
    keys = [f"user-{i}" for i in range(count)]
    rows = []
    # C and pure Python keep the same tables: one row for both.
    for case in contenders.memory_cases(IN_USE, pure_python=False):
        if case.name == contenders.ACQUIRE:
            continue  # the same buckets as try_acquire
        try:
            size = bytes_per_bucket(case.make, keys)
        except Exception as exc:
            progress(f"    {case.name}: failed ({type(exc).__name__}: {exc})")
            continue
        name = "bucketcore memory://" if case.name == contenders.TRY_ACQUIRE else case.name
        rows.append(
            {
                "store": "memory",
                "case": name,
                "role": case.role,
                "keys": count,
                "bytes_per_bucket": size,
                "method": "tracemalloc",
            }
        )
    return rows


# -- Redis: MEMORY USAGE ------------------------------------------------------------


def _usage(client: Any) -> int:
    total = 0
    keys = list(client.scan_iter(count=1000))
    for start in range(0, len(keys), 1000):
        pipe = client.pipeline(transaction=False)
        for key in keys[start : start + 1000]:
            pipe.memory_usage(key, samples=0)
        total += sum(size or 0 for size in pipe.execute())
    return total


def redis_rows(base: str, sizes: Sizes) -> list[dict[str, Any]]:
    """``MEMORY USAGE`` summed over each library's keys, per bucket (own database each)."""
    import redis

    count = min(sizes.footprint_keys, 10_000)  # peers decide one call at a time
    progress(f"  redis: footprint of {count:,} buckets per library (MEMORY USAGE)")
    keys = [f"user-{i}" for i in range(count)]
    makers: dict[str, tuple[str, Any]] = {
        "bucketcore redis://": (BUCKETCORE, None),
        f"{contenders.THROTTLED} (Redis)": (PEER, "throttled"),
        f"{contenders.PYRATE} (Redis)": (PEER, "pyrate"),
        f"{contenders.LIMITS_FIXED} (Redis)": (PEER, "fixed"),
        f"{contenders.LIMITS_MOVING} (Redis)": (PEER, "moving"),
        f"{contenders.LIMITS_SLIDING} (Redis)": (PEER, "sliding"),
    }
    rows = []
    for db, (name, (role, which)) in enumerate(makers.items(), start=1):
        client = redis.Redis.from_url(f"{base}/{db}")
        client.flushdb()
        try:
            if which is None:
                limiter = Limiter(prefixed(f"{base}/{db}"))
                limit = SHARED_IN_USE.limit()
                for start in range(0, count, 100):
                    limiter.acquire_many([(key, limit, 1) for key in keys[start : start + 100]])
                limiter.close()
            else:
                decide = _peer_on_db(which, f"{base}/{db}")
                for key in keys:
                    decide(key)
            rows.append(
                {
                    "store": "redis",
                    "case": name,
                    "role": role,
                    "keys": count,
                    "bytes_per_bucket": _usage(client) / count,
                    "method": "MEMORY USAGE summed over the keys",
                }
            )
        except Exception as exc:
            progress(f"    {name}: failed ({type(exc).__name__}: {exc})")
        finally:
            client.flushdb()
            client.close()
    return rows


def _peer_on_db(which: str, url: str) -> Decide:
    if which == "throttled":
        from throttled import store

        return contenders.make_throttled(SHARED_IN_USE, store.RedisStore(server=url))
    if which == "pyrate":
        import redis

        return contenders.make_pyrate(SHARED_IN_USE, redis_client=redis.Redis.from_url(url))
    return contenders.make_limits(SHARED_IN_USE, which, url, "fp")
