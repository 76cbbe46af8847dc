"""docs/design.md §6's bars, as ratios between two cases of one measured group.

Every bar compares two cases that were measured in the same group, round
for round, so it is a ratio from one run. ``ratio`` is always
``ns(numerator) / ns(denominator)``: for "no slower than" bars the
numerator is ours, for "N times faster / more throughput" bars it is the
slower side. A bar whose group or cases are missing is reported as not
measured, which counts as missed.

"A raw EVALSHA of a trivial script" is measured two ways, and both are
bars: through redis-py's ``evalsha()`` (what an application would call), and
as one hiredis-packed command on one connection (the wire floor, below
redis-py's own per-command cost, which bucketcore's hot path also skips).

One bar is absolute, the contract's only one: while Redis is stalled, the
p99 of the calls after the first failure is at most 5 ms. Its ``unit`` is
``"ms"``: it has no denominator, and its ``ratio`` is the numerator's
measured nanoseconds (the p99 the ``redis.stalled`` group reports) in ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmarks import contenders as c

PASS, FAIL, MISSING = "PASS", "FAIL", "NOT MEASURED"


@dataclass(frozen=True)
class Bar:
    issue: int
    text: str
    group: str
    numerator: str
    denominator: str
    op: str  # "<=" or ">="
    threshold: float
    unit: str = "x"  # "x": numerator / denominator; "ms": the numerator alone, in ms

    def judge(self, ratio: float | None) -> str:
        if ratio is None:
            return MISSING
        ok = ratio <= self.threshold if self.op == "<=" else ratio >= self.threshold
        return PASS if ok else FAIL


# Case names the store suites use (they import them from here).
MEMORY_STORE = "memory:// acquire"
MEMORY_STORE_TRY = "memory:// try_acquire"
ROCKSDB_WAL_TRY = "rocksdb wal try_acquire"
ROCKSDB_WAL = "rocksdb wal acquire"
ROCKSDB_SYNC = "rocksdb sync acquire"
ROCKSDB_PERIODIC = "rocksdb periodic acquire"
ROCKSDB_SYNC_8 = f"{ROCKSDB_SYNC}, 8 threads"
NAIVE_FSYNC = "naive loop: rocksdict put + fsync each"
REDIS_SINGLE = "bucketcore redis acquire"
REDIS_EVALSHA = "raw EVALSHA of a trivial script"
REDIS_PY_EVALSHA = "redis-py evalsha() of the trivial script"
REDIS_RAW_SCRIPT = "raw EVALSHA of bucketcore's own script (diagnostic)"
REDIS_BATCH = "bucketcore redis acquire_many (batch)"
REDIS_ASYNC = "bucketcore AsyncLimiter (tasks)"
REDIS_STALLED_ALLOW = "bucketcore redis acquire while stalled, on_error=allow (p99)"
REDIS_STALLED_LOCAL = "bucketcore redis acquire while stalled, on_error=local (p99)"
LMDB_WAL = "lmdb wal acquire"
LMDB_WAL_TRY = "lmdb wal try_acquire"
PYRATE_SQLITE = "pyrate-limiter SQLiteBucket (file lock)"
MEMORY_PER_PROCESS = "memory:// acquire (per process, not shared)"
OUTBOUND_BARE = "bare httpx transport"
OUTBOUND_PACED = "RateLimitedTransport (never waits)"
OUTBOUND_LIMIT = "what the server allows"
OUTBOUND_GOT = "what the client got"


def _memory_bars(group: str, where: str) -> list[Bar]:
    bars = [
        Bar(
            2,
            f"try_acquire <= 1.0x falconry consume ({where})",
            group,
            c.TRY_ACQUIRE,
            c.FALCONRY,
            "<=",
            1.0,
        ),
        Bar(
            2,
            f"acquire <= 1.5x falconry consume ({where})",
            group,
            c.ACQUIRE,
            c.FALCONRY,
            "<=",
            1.5,
        ),
    ]
    bars += [
        Bar(
            2,
            f"try_acquire >= 8x faster than {peer} ({where})",
            group,
            peer,
            c.TRY_ACQUIRE,
            ">=",
            8.0,
        )
        for peer in c.PEERS_8X
    ]
    bars.append(
        Bar(
            2,
            f"acquire >= 8x faster than {c.THROTTLED} ({where})",
            group,
            c.THROTTLED,
            c.ACQUIRE,
            ">=",
            8.0,
        )
    )
    return bars


def _lmdb_bars(group: str, where: str) -> list[Bar]:
    return [
        Bar(
            11,
            f"lmdb wal <= 25x memory:// per acquire ({where})",
            group,
            LMDB_WAL,
            MEMORY_STORE,
            "<=",
            25.0,
        ),
        Bar(
            11,
            f"lmdb wal acquire >= 10x faster than one redis decision ({where})",
            group,
            REDIS_SINGLE,
            LMDB_WAL,
            ">=",
            10.0,
        ),
        Bar(
            11,
            f"lmdb wal acquire >= 5x faster than pyrate-limiter's SQLite bucket ({where})",
            group,
            PYRATE_SQLITE,
            LMDB_WAL,
            ">=",
            5.0,
        ),
    ]


BARS: list[Bar] = [
    *_memory_bars("memory.hot", "one hot key"),
    *_memory_bars("memory.many", "100k keys"),
    Bar(
        3,
        "rocksdb wal <= 10x memory:// per decision (one hot key)",
        "rocksdb.hot",
        ROCKSDB_WAL,
        MEMORY_STORE,
        "<=",
        10.0,
    ),
    Bar(
        3,
        "rocksdb wal try_acquire <= 10x memory:// try_acquire (one hot key)",
        "rocksdb.hot",
        ROCKSDB_WAL_TRY,
        MEMORY_STORE_TRY,
        "<=",
        10.0,
    ),
    Bar(
        3,
        "rocksdb wal <= 10x memory:// per decision (100k keys)",
        "rocksdb.many",
        ROCKSDB_WAL,
        MEMORY_STORE,
        "<=",
        10.0,
    ),
    Bar(
        3,
        "rocksdb sync, 8 threads >= 4x the throughput of a naive fsync-per-put loop",
        "rocksdb.sync_threads",
        NAIVE_FSYNC,
        ROCKSDB_SYNC_8,
        ">=",
        4.0,
    ),
    Bar(
        4,
        "redis single decision <= 1.15x redis-py evalsha() of a trivial script",
        "redis.hot",
        REDIS_SINGLE,
        REDIS_PY_EVALSHA,
        "<=",
        1.15,
    ),
    Bar(
        4,
        "redis single decision <= 1.15x a raw EVALSHA of a trivial script",
        "redis.hot",
        REDIS_SINGLE,
        REDIS_EVALSHA,
        "<=",
        1.15,
    ),
    Bar(
        4,
        "redis acquire_many of 100 >= 8x the single-call throughput",
        "redis.hot",
        REDIS_SINGLE,
        REDIS_BATCH,
        ">=",
        8.0,
    ),
    Bar(
        4,
        "redis AsyncLimiter, 50 tasks >= 2x one synchronous connection",
        "redis.hot",
        REDIS_SINGLE,
        REDIS_ASYNC,
        ">=",
        2.0,
    ),
    *(
        Bar(
            15,
            f"redis stalled: p99 of the calls after the first failure <= 5 ms ({on_error})",
            "redis.stalled",
            case,
            "",
            "<=",
            5.0,
            unit="ms",
        )
        for on_error, case in (
            ("on_error=allow", REDIS_STALLED_ALLOW),
            ("on_error=local", REDIS_STALLED_LOCAL),
        )
    ),
    *_lmdb_bars("lmdb.hot", "one hot key"),
    *_lmdb_bars("lmdb.many", "distinct keys"),
    Bar(
        11,
        "4 processes on lmdb, 4 key sets: >= 5x the aggregate decisions/s of 4 on redis",
        "processes.4",
        REDIS_SINGLE,
        LMDB_WAL,
        ">=",
        5.0,
    ),
    Bar(
        16,
        "outbound transport <= 1.10x a bare httpx transport per request (nothing waits)",
        "outbound.overhead",
        OUTBOUND_PACED,
        OUTBOUND_BARE,
        "<=",
        1.10,
    ),
    *(
        Bar(
            16,
            f"outbound greedy client >= 98% of the allowed rate ({where})",
            group,
            OUTBOUND_LIMIT,
            OUTBOUND_GOT,
            ">=",
            0.98,
        )
        for group, where in (
            ("outbound.rate", "20/s"),
            ("outbound.rate_burst1", "5/s burst 1"),
        )
    ),
]


def _times(groups: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    times: dict[str, dict[str, float]] = {}
    for group in groups:
        cases = times.setdefault(group["id"], {})
        for row in group["rows"]:
            cases[row["case"]] = row["ns"]
            if row.get("bar_case"):  # a case whose name carries its sizes
                cases[row["bar_case"]] = row["ns"]
    return times


def evaluate(groups: list[dict[str, Any]], bars: list[Bar] | None = None) -> list[dict[str, Any]]:
    """One row per bar: the measured ratio (or None) and PASS / FAIL / NOT MEASURED."""
    times = _times(groups)
    rows = []
    for bar in BARS if bars is None else bars:
        measured = times.get(bar.group, {})
        top, bottom = measured.get(bar.numerator), measured.get(bar.denominator)
        if bar.unit == "ms":
            ratio = None if top is None else top / 1e6
        else:
            ratio = None if top is None or bottom is None or bottom <= 0 else top / bottom
        rows.append(
            {
                "issue": bar.issue,
                "bar": bar.text,
                "group": bar.group,
                "numerator": bar.numerator,
                "denominator": bar.denominator,
                "op": bar.op,
                "threshold": bar.threshold,
                "unit": bar.unit,
                "ratio": ratio,
                "result": bar.judge(ratio),
            }
        )
    return rows
