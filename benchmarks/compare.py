"""Side-by-side: bucketcore's memory path next to a floor and the peers, in one run.

Every case decides on the same keys in the same process, each through one
lambda (so call overhead is alike); the rounds are interleaved and each
case keeps its best round, so a noisy neighbour slows all cases alike and
the ratios stay meaningful.

    python -m benchmarks.compare            # about a minute
    python -m benchmarks.compare --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bucketcore import Limit, Limiter

Decide = Callable[[str], object]

BURST = 10**12  # every call is allowed: this measures the allowed path


@dataclass(frozen=True)
class Policy:
    """What every case limits to: ``tokens`` per ``period`` seconds, ``BURST``."""

    tokens: int
    period: float

    @property
    def rate(self) -> float:
        return self.tokens / self.period


# Buckets in use: each call leaves ten seconds of debt, so no bucket is
# full (and forgettable) when its key comes round again.
IN_USE = Policy(1, 10.0)
# Buckets that refill within a nanosecond: full again at every visit, so
# bucketcore forgets them and recreates them (its memory bound at work).
ALWAYS_FULL = Policy(10**9, 1.0)


def floor_case(policy: Policy) -> Decide:
    """A dict, a lock and time.monotonic_ns: what any exact limiter must do."""
    table: dict[str, int] = {}
    lock = threading.Lock()
    clock = time.monotonic_ns

    def decide(key: str) -> bool:
        with lock:
            now = clock()
            table.get(key)
            table[key] = now
        return True

    return decide


def bucketcore_try_acquire(policy: Policy) -> Decide:
    limiter, limit = Limiter("memory://"), Limit(policy.tokens, policy.period, burst=BURST)
    try_acquire = limiter.try_acquire
    return lambda key: try_acquire(key, limit)


def bucketcore_acquire(policy: Policy) -> Decide:
    limiter, limit = Limiter("memory://"), Limit(policy.tokens, policy.period, burst=BURST)
    acquire = limiter.acquire
    return lambda key: acquire(key, limit)


def falconry_consume(policy: Policy) -> Decide:
    import token_bucket

    consume = token_bucket.Limiter(policy.rate, BURST, token_bucket.MemoryStorage()).consume
    return lambda key: consume(key)


def throttled_token_bucket(policy: Policy) -> Decide:
    from throttled import Throttled, rate_limiter, store

    quota = rate_limiter.per_duration(timedelta(seconds=policy.period), policy.tokens, burst=BURST)
    limit = Throttled(using="token_bucket", quota=quota, store=store.MemoryStore()).limit
    return lambda key: limit(key)


def limits_moving_window(policy: Policy) -> Decide:
    from limits import RateLimitItemPerSecond, storage, strategies

    # limits has no burst: a window as large as the burst keeps every call allowed.
    limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
    item = RateLimitItemPerSecond(BURST, max(1, round(policy.period)))
    return lambda key: limiter.hit(item, key)


def limits_fixed_window(policy: Policy) -> Decide:
    from limits import RateLimitItemPerSecond, storage, strategies

    limiter = strategies.FixedWindowRateLimiter(storage.MemoryStorage())
    item = RateLimitItemPerSecond(BURST, max(1, round(policy.period)))
    return lambda key: limiter.hit(item, key)


def pyrate_token_bucket(policy: Policy) -> Decide:
    from pyrate_limiter import Limiter, Rate

    # pyrate-limiter's bucket is a sliding log; a large window keeps calls allowed.
    try_acquire = Limiter(Rate(10**7, max(1000, round(policy.period * 1000)))).try_acquire
    return lambda key: try_acquire(key)


CASES: dict[str, Callable[[Policy], Decide]] = {
    "floor: dict + lock + monotonic_ns": floor_case,
    "bucketcore try_acquire": bucketcore_try_acquire,
    "bucketcore acquire (Decision)": bucketcore_acquire,
    "token-bucket (falconry) consume": falconry_consume,
    "throttled-py token bucket": throttled_token_bucket,
    "pyrate-limiter": pyrate_token_bucket,
    "limits fixed window": limits_fixed_window,
    "limits moving window": limits_moving_window,
}
FALCONRY = "token-bucket (falconry) consume"
THROTTLED = "throttled-py token bucket"
PEERS_8X = [THROTTLED, "pyrate-limiter", "limits fixed window", "limits moving window"]


@dataclass
class Workload:
    name: str
    keys: list[str]
    policy: Policy
    has_bars: bool = True


def _time_round(decide: Decide, keys: list[str]) -> float:
    started = time.perf_counter_ns()
    for key in keys:
        decide(key)
    return (time.perf_counter_ns() - started) / len(keys)


def measure(workload: Workload, rounds: int) -> dict[str, float]:
    """Best ns/decision of each case over interleaved rounds."""
    deciders: dict[str, Decide] = {}
    for name, make in CASES.items():
        try:
            deciders[name] = make(workload.policy)
        except Exception as exc:  # a peer missing or changed: report, don't stop
            print(f"  {name}: unavailable ({exc})", file=sys.stderr)
    for decide in deciders.values():  # warm up: create every bucket once
        _time_round(decide, workload.keys)
    best = {name: float("inf") for name in deciders}
    for _ in range(rounds):
        for name, decide in deciders.items():
            best[name] = min(best[name], _time_round(decide, workload.keys))
    return best


def bars(
    results: dict[str, dict[str, float]], with_bars: set[str]
) -> list[tuple[str, float, float, bool]]:
    """(bar, measured ratio, limit, passed) for DESIGN §5's memory bars."""
    rows = []
    for workload, times in results.items():
        if FALCONRY not in times or workload not in with_bars:
            continue
        falconry = times[FALCONRY]
        try_ratio = times["bucketcore try_acquire"] / falconry
        acquire_ratio = times["bucketcore acquire (Decision)"] / falconry
        rows.append((f"{workload}: try_acquire / falconry", try_ratio, 1.0, try_ratio <= 1.0))
        rows.append((f"{workload}: acquire / falconry", acquire_ratio, 1.5, acquire_ratio <= 1.5))
        for peer in PEERS_8X:
            if peer in times:
                speedup = times[peer] / times["bucketcore try_acquire"]
                rows.append((f"{workload}: {peer} / try_acquire", speedup, 8.0, speedup >= 8.0))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and rounds")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    calls, rounds = (20_000, 3) if args.quick else (200_000, 7)
    many = [f"user-{i % 100_000}" for i in range(max(calls, 100_000))]
    workloads = [
        Workload("one hot key", ["hot"] * calls, ALWAYS_FULL),
        Workload("100k keys round-robin", many, IN_USE),
        Workload("100k keys, full again at each visit", many, ALWAYS_FULL, has_bars=False),
    ]
    print(f"Python {platform.python_version()} on {platform.machine()}, {calls:,} calls x {rounds}")
    results: dict[str, dict[str, float]] = {}
    for workload in workloads:
        times = measure(workload, rounds)
        results[workload.name] = times
        floor = times["floor: dict + lock + monotonic_ns"]
        print(f"\n{workload.name}")
        print(f"  {'case':40} {'ns/decision':>12} {'x floor':>8}")
        for name, ns in times.items():
            print(f"  {name:40} {ns:12.0f} {ns / floor:8.2f}")
    print("\nbars (DESIGN §5)")
    table = bars(results, {w.name for w in workloads if w.has_bars})
    for bar, ratio, limit, passed in table:
        relation = "<=" if limit <= 1.5 else ">="
        print(f"  {'PASS' if passed else 'FAIL'}  {bar:55} {ratio:7.2f}  ({relation} {limit:g})")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "bars": table}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
