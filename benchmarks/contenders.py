"""The contenders: floors, bucketcore and the peers, built for one ``Policy``.

Each ``make_*`` returns a decider ``decide(key)`` that asks its library for
one token of ``key`` the way a user of that library would, through one
lambda, so the call overhead is alike. Peers are the pinned versions of the
``bench`` extra; how each one's model maps onto a token bucket is said next
to it, because a window limiter has no burst.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from benchmarks.harness import BUCKETCORE, FLOOR, PEER, Case, Decide
from bucketcore import Limit, Limiter
from bucketcore.memory import PURE_PYTHON_VARIABLE, fast_path_available


@dataclass(frozen=True)
class Policy:
    """``tokens`` per ``period`` seconds, holding at most ``burst``."""

    tokens: int
    period: float
    burst: int

    @property
    def rate(self) -> float:
        return self.tokens / self.period

    def limit(self) -> Limit:
        return Limit(self.tokens, self.period, burst=self.burst)

    def window(self) -> tuple[int, int]:
        """(amount, whole seconds) of a window limiter closest to this bucket.

        The window is as long as the bucket takes to refill (burst / rate),
        rounded up to whole seconds (``limits`` counts whole seconds), and
        holds what the rate refills in it: same long-run rate, and a burst
        as close as a window can get.
        """
        seconds = max(1, math.ceil(self.burst / self.rate))
        return max(1, round(self.rate * seconds)), seconds


BURST = 10**12
# Every call allowed, and each visit leaves a minute of debt: buckets stay
# resident (not full) between visits of their key. The burst is what that
# rate refills in a year, the longest horizon a Limit may have
# (docs/design.md §3): 525,600 visits of one key, far more than any group
# makes (a hot key on a store: 5 rounds of 3,000 calls).
IN_USE = Policy(1, 60.0, 525_600)
# IN_USE for one hot key on Redis (far fewer calls a second than memory):
# thirty seconds of debt per call, a burst no run gets near.
SHARED_IN_USE = Policy(1, 30.0, 10**6)
# Every call allowed; buckets refill within 100 ns, so bucketcore forgets
# them and recreates them (its memory bound at work).
ALWAYS_FULL = Policy(10**7, 1.0, BURST)
# One token a day: after the first call, every call is denied.
DENIED = Policy(1, 86400.0, 1)


def with_close(decide: Decide, close: Callable[[], object]) -> Decide:
    """Attach ``close`` to a decider, for ``harness.close_all``."""
    decide.close = close  # type: ignore[attr-defined]
    return decide


# -- floors -----------------------------------------------------------------


def make_floor(policy: Policy) -> Decide:
    """A dict, a lock and ``time.monotonic_ns``: what any exact limiter must do."""
    table: dict[Any, int] = {}
    lock = threading.Lock()
    clock = time.monotonic_ns

    def decide(key: Any) -> bool:
        with lock:
            now = clock()
            table.get(key)
            table[key] = now
        return True

    return decide


# -- bucketcore ---------------------------------------------------------------


def make_bucketcore(
    policy: Policy,
    url: str = "memory://",
    *,
    full: bool = False,
    pure_python: bool = False,
    **options: Any,
) -> Decide:
    """``try_acquire`` (or, with ``full``, ``acquire`` and its Decision) on ``url``.

    ``pure_python`` builds the limiter without its C fast path.
    """
    previous = os.environ.get(PURE_PYTHON_VARIABLE)
    if pure_python:
        os.environ[PURE_PYTHON_VARIABLE] = "1"
    try:
        limiter = Limiter(url, **options)
    finally:
        if previous is None:
            os.environ.pop(PURE_PYTHON_VARIABLE, None)
        else:
            os.environ[PURE_PYTHON_VARIABLE] = previous
    limit = policy.limit()
    call = limiter.acquire if full else limiter.try_acquire
    return with_close(lambda key: call(key, limit), limiter.close)


# -- peers in memory ----------------------------------------------------------


def make_falconry(policy: Policy, clock: Any = None) -> Decide:
    """token-bucket (falconry) 0.4: ``consume``; no lock, a bare bool."""
    import token_bucket

    consume = token_bucket.Limiter(policy.rate, policy.burst, token_bucket.MemoryStorage()).consume
    return lambda key: consume(key)


def _throttled_quota(policy: Policy) -> Any:
    from throttled import rate_limiter

    return rate_limiter.per_duration(
        timedelta(seconds=policy.period), policy.tokens, burst=policy.burst
    )


def make_throttled(policy: Policy, store: Any = None) -> Decide:
    """throttled-py 3.5: its token bucket, ``limit(key)``; allowed when not ``limited``.

    Its ``MemoryStore`` keeps 1024 keys by default and evicts the least
    recently used (a reset bucket); here it may keep every key, like the others.
    """
    from throttled import Throttled
    from throttled import store as stores

    throttle = Throttled(
        using="token_bucket",
        quota=_throttled_quota(policy),
        store=store if store is not None else stores.MemoryStore(options={"MAX_SIZE": 2**40}),
    )
    limit = throttle.limit
    return lambda key: not limit(key).limited


def make_limits(
    policy: Policy, strategy: str, uri: str = "memory://", namespace: str = ""
) -> Decide:
    """limits 5.8: ``hit`` on a fixed, moving or sliding window (see ``Policy.window``).

    The moving window keeps one entry per hit inside its window, inserted at
    the front of a list: where every call is allowed (a window as large as
    the run), its cost per call grows with the run's length.
    """
    from limits import RateLimitItemPerSecond, storage, strategies

    kinds = {
        "fixed": strategies.FixedWindowRateLimiter,
        "moving": strategies.MovingWindowRateLimiter,
        "sliding": strategies.SlidingWindowCounterRateLimiter,
    }
    amount, seconds = policy.window()
    limiter = kinds[strategy](storage.storage_from_string(uri))
    item = RateLimitItemPerSecond(amount, seconds)
    hit = limiter.hit
    if namespace:  # strategies keep different types under the same key name
        return lambda key: hit(item, namespace, key)
    return lambda key: hit(item, key)


def _pyrate_factory(policy: Policy, redis_client: Any = None, clock: Any = None) -> Any:
    """A pyrate-limiter bucket factory with one token-bucket ``StateBucket`` per key.

    pyrate-limiter's ``Limiter(rate)`` is one bucket for every name; per-key
    buckets are what its ``BucketFactory`` is for.
    """
    from pyrate_limiter import BucketFactory, Rate, RateItem
    from pyrate_limiter.abstracts.algorithm import TokenBucket
    from pyrate_limiter.buckets.redis_state import RedisStateStore
    from pyrate_limiter.buckets.state_bucket import StateBucket
    from pyrate_limiter.clocks import MonotonicClock, WallClock

    rate = Rate(policy.tokens, max(1, round(policy.period * 1000)), burst=policy.burst)
    the_clock = clock or (WallClock() if redis_client is not None else MonotonicClock())

    class PerKey(BucketFactory):  # type: ignore[misc]
        def __init__(self) -> None:
            self.buckets: dict[str, Any] = {}

        def wrap_item(self, name: str, weight: int = 1) -> Any:
            return RateItem(name, the_clock.now(), weight=weight)

        def get(self, item: Any) -> Any:
            bucket = self.buckets.get(item.name)
            if bucket is None:
                store = None if redis_client is None else RedisStateStore(redis_client, item.name)
                bucket = StateBucket([rate], TokenBucket(), store=store, clock=the_clock)
                self.buckets[item.name] = bucket
            return bucket

        def get_buckets(self) -> list[Any]:
            return list(self.buckets.values())

    return PerKey()


def make_pyrate(policy: Policy, redis_client: Any = None, clock: Any = None) -> Decide:
    """pyrate-limiter 4.5: its token bucket (``StateBucket`` + ``TokenBucket``), non-blocking."""
    from pyrate_limiter import Limiter as PyrateLimiter

    try_acquire = PyrateLimiter(_pyrate_factory(policy, redis_client, clock)).try_acquire
    return lambda key: try_acquire(key, blocking=False)


# A rate no run reaches in a one-second window: every call allowed, and the
# SQLite log (one row per call, counted on each call) holds one second of calls.
SQLITE_RATE_LIMIT = 10**9
SQLITE_WINDOW_MS = 1000


def make_pyrate_sqlite(db_path: str) -> Decide:
    """pyrate-limiter 4.5: ``SQLiteBucket.init_from_file(..., use_file_lock=True)``.

    The way its README shares one limit between processes on a host: one
    SQLite file in WAL mode, each call under a ``filelock`` on ``db_path +
    ".lock"``. Its ``Limiter(bucket)`` is one bucket for every name (a
    sliding-window log); ``try_acquire(key)`` blocking, as non-blocking calls
    pass ``acquire(False)`` to the file lock, which filelock 4 takes as a
    timeout and refuses. Every call here is allowed, so nothing waits.
    """
    from pyrate_limiter import Limiter as PyrateLimiter
    from pyrate_limiter import Rate, SQLiteBucket

    bucket = SQLiteBucket.init_from_file(
        [Rate(SQLITE_RATE_LIMIT, SQLITE_WINDOW_MS)], db_path=db_path, use_file_lock=True
    )
    limiter = PyrateLimiter(bucket)
    try_acquire = limiter.try_acquire

    def close() -> None:
        closer = getattr(limiter, "close", None)
        if callable(closer):
            closer()
        bucket.close()

    return with_close(lambda key: try_acquire(key), close)


# -- the memory line-up -------------------------------------------------------

FLOOR_NAME = "floor: dict + lock + monotonic_ns"
TRY_ACQUIRE = "bucketcore try_acquire"
ACQUIRE = "bucketcore acquire (Decision)"
TRY_ACQUIRE_PURE = "bucketcore try_acquire, pure Python"
ACQUIRE_PURE = "bucketcore acquire (Decision), pure Python"
FALCONRY = "token-bucket (falconry) consume"
THROTTLED = "throttled-py token bucket"
PYRATE = "pyrate-limiter token bucket"
LIMITS_FIXED = "limits fixed window"
LIMITS_MOVING = "limits moving window"
LIMITS_SLIDING = "limits sliding window"
# docs/design.md §6: bucketcore's try_acquire is at least 8x faster than each of these.
PEERS_8X = (THROTTLED, PYRATE, LIMITS_FIXED, LIMITS_MOVING, LIMITS_SLIDING)


def memory_cases(policy: Policy, *, peers: bool = True, pure_python: bool = True) -> list[Case]:
    """Floor, bucketcore (both calls) and, with ``peers``, every peer in memory.

    With ``pure_python`` (and the C fast path built), bucketcore's two calls
    are also measured without it.
    """
    cases = [
        Case(FLOOR_NAME, FLOOR, lambda: make_floor(policy)),
        Case(TRY_ACQUIRE, BUCKETCORE, lambda: make_bucketcore(policy)),
        Case(ACQUIRE, BUCKETCORE, lambda: make_bucketcore(policy, full=True)),
        Case(FALCONRY, PEER, lambda: make_falconry(policy)),
    ]
    if pure_python and fast_path_available():  # else the cases above are pure Python
        cases += [
            Case(TRY_ACQUIRE_PURE, BUCKETCORE, lambda: make_bucketcore(policy, pure_python=True)),
            Case(
                ACQUIRE_PURE,
                BUCKETCORE,
                lambda: make_bucketcore(policy, full=True, pure_python=True),
            ),
        ]
    if peers:
        cases += [
            Case(THROTTLED, PEER, lambda: make_throttled(policy)),
            Case(PYRATE, PEER, lambda: make_pyrate(policy)),
            Case(LIMITS_FIXED, PEER, lambda: make_limits(policy, "fixed")),
            Case(LIMITS_MOVING, PEER, lambda: make_limits(policy, "moving")),
            Case(LIMITS_SLIDING, PEER, lambda: make_limits(policy, "sliding")),
        ]
    return cases
