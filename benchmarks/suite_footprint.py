"""Footprint in memory: bytes per resident bucket, by ``tracemalloc``.

Each library gets ``N`` distinct keys (already allocated, so the key strings
themselves are not counted, only what the library keeps per key), one
allowed call each, with buckets that stay in use. The RocksDB (on disk,
after compaction) and Redis (``MEMORY USAGE``) rows come from their suites.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

from benchmarks import contenders
from benchmarks.contenders import IN_USE
from benchmarks.harness import Sizes, progress

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
