"""``memory://``: the in-process core, one lock around a dict of buckets.

This is the authority for ``memory://`` and, with write-through hooks, for
``rocksdb://``. It does no I/O: persistence lives in subclasses.

A bucket is ``[tat, limit]`` under ``(limit.identity, key)``; a missing
bucket is a full one. Full buckets carry no information, so they are dropped
lazily: each call that creates a bucket also sweeps a little of a snapshot of
the table (see ``_sweep``). No thread, and no live bucket is ever reset.

>>> from bucketcore import Limit
>>> store = MemoryStore(clock=lambda: 0)
>>> once_a_minute = (Limit(1, 60.0),)
>>> store.try_acquire("alice", once_a_minute, 1), store.try_acquire("alice", once_a_minute, 1)
(True, False)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import SplitResult

from bucketcore._gcra import NEVER, Step, evaluate, refunded
from bucketcore._keys import canonical_key
from bucketcore.decision import Decision, from_nanoseconds
from bucketcore.errors import ConfigurationError
from bucketcore.limit import Limit
from bucketcore.store import Clock, Request, split_options

__all__ = ["MemoryStore", "open_store"]

Key = str | bytes
BucketId = tuple[str, Key]
Bucket = list[Any]  # [tat: int, limit: Limit]; a list so the hot path updates in place

# Per created bucket, sweep until this many live buckets were seen (so the
# table cannot outgrow twice its live size for long), but never examine more
# than _SWEEP_MAX entries in one call (so no call stalls on a huge table).
_SWEEP_LIVE = 2
_SWEEP_MAX = 1024


def _binding(limits: tuple[Limit, ...], steps: list[Step], allowed: bool) -> int:
    """Index of the binding limit: longest wait if denied, fewest tokens if allowed."""
    if allowed:
        return min(range(len(steps)), key=lambda i: (steps[i].remaining, -steps[i].reset_ns))
    return max(
        range(len(steps)),
        key=lambda i: (steps[i].retry_ns == NEVER, steps[i].retry_ns, -steps[i].remaining),
    )


def decision_from_steps(limits: tuple[Limit, ...], steps: list[Step]) -> Decision:
    """Combine per-limit steps into the call's ``Decision`` (all-or-nothing).

    >>> from bucketcore._gcra import evaluate
    >>> limits = (Limit(1, 1.0), Limit(5, 1.0))
    >>> decision_from_steps(limits, [evaluate(l, None, 0, 1) for l in limits]).limit.tokens
    1
    """
    allowed = all(step.allowed for step in steps)
    index = _binding(limits, steps, allowed)
    step = steps[index]
    return from_nanoseconds(allowed, step.remaining, step.retry_ns, step.reset_ns, limits[index])


class MemoryStore:
    """The embedded store: exact, thread-safe, bounded, no I/O.

    ``clock`` returns monotonic nanoseconds (default ``time.monotonic_ns``);
    it is read inside the lock, so each bucket sees time move forward.

    >>> from bucketcore import Limit
    >>> MemoryStore().acquire("k", (Limit(10, 1.0),), 3).remaining
    7
    """

    # Subclasses that persist (RocksDB) set this and override the hooks.
    _writes_through = False

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock: Clock = clock if clock is not None else time.monotonic_ns
        self._lock = threading.Lock()
        self._buckets: dict[BucketId, Bucket] = {}
        self._sweep_queue: list[BucketId] = []
        self._sweep_next = 0

    # -- hooks for write-through subclasses (called with the lock held) ----

    def _load(self, bucket_id: BucketId, limit: Limit, now_ns: int) -> int | None:
        """The persisted ``tat`` of a bucket missing from memory, if any."""
        return None

    def _persist(self, changes: list[tuple[BucketId, Limit, int | None]], now_ns: int) -> None:
        """Record new states (``None``: the bucket is full) before answering."""

    def _settle(self) -> None:
        """Called after the lock is released, before a changing call returns."""

    def _forget(self, bucket_ids: list[BucketId]) -> None:
        """The sweep dropped these full buckets from memory (their records may go)."""

    # -- the contract ------------------------------------------------------

    def try_acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> bool:
        if len(limits) != 1:
            return self._decide(key, limits, cost, consume=True).allowed
        limit = limits[0]
        if type(key) is not str:
            key = canonical_key(key)
        bucket_id = (limit.identity, key)
        with self._lock:
            now_ns = self._clock()
            now = now_ns * limit.units_per_ns
            bucket = self._buckets.get(bucket_id)
            if bucket is None:
                tat = self._load(bucket_id, limit, now_ns) if self._writes_through else None
                after = (now if tat is None or tat < now else tat) + cost * limit.token_units
                if after - now > limit.capacity_units:
                    return False
                self._buckets[bucket_id] = [after, limit]
                self._sweep(now_ns)
            else:
                if bucket[1] is not limit:
                    self._check_same_limit(bucket, limit)
                tat = bucket[0]
                after = (now if tat < now else tat) + cost * limit.token_units
                if after - now > limit.capacity_units:
                    return False
                bucket[0] = after
            if self._writes_through:
                self._persist([(bucket_id, limit, after)], now_ns)
        if self._writes_through:
            self._settle()
        return True

    def acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        return self._decide(key, limits, cost, consume=True)

    def peek(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        return self._decide(key, limits, cost, consume=False)

    def acquire_many(self, requests: Sequence[Request]) -> list[Decision]:
        return [self._decide(key, limits, cost, consume=True) for key, limits, cost in requests]

    def refund(self, key: Key, limits: tuple[Limit, ...], tokens: int) -> None:
        key = canonical_key(key)
        with self._lock:
            now_ns = self._clock()
            changes = []
            for limit in limits:
                bucket_id = (limit.identity, key)
                tat = refunded(limit, self._tat(bucket_id, limit, now_ns), now_ns, tokens)
                self._store_tat(bucket_id, limit, tat, now_ns)
                changes.append((bucket_id, limit, tat))
            if self._writes_through:
                self._persist(changes, now_ns)
        if self._writes_through:
            self._settle()

    def reset(self, key: Key, limits: tuple[Limit, ...]) -> None:
        key = canonical_key(key)
        with self._lock:
            now_ns = self._clock()
            changes: list[tuple[BucketId, Limit, int | None]] = []
            for limit in limits:
                bucket_id = (limit.identity, key)
                self._buckets.pop(bucket_id, None)
                changes.append((bucket_id, limit, None))
            if self._writes_through:
                self._persist(changes, now_ns)
        if self._writes_through:
            self._settle()

    def close(self) -> None:
        """Nothing to release; the buckets stay usable (the Limiter refuses)."""

    def __len__(self) -> int:
        """How many buckets are resident (full ones may still be among them)."""
        return len(self._buckets)

    # -- internals -----------------------------------------------------------

    def _decide(self, key: Key, limits: tuple[Limit, ...], cost: int, *, consume: bool) -> Decision:
        key = canonical_key(key)
        with self._lock:
            now_ns = self._clock()
            ids = [(limit.identity, key) for limit in limits]
            steps = [
                evaluate(limit, self._tat(bucket_id, limit, now_ns), now_ns, cost)
                for bucket_id, limit in zip(ids, limits, strict=True)
            ]
            changed = consume and all(step.allowed for step in steps)
            if changed:
                for bucket_id, limit, step in zip(ids, limits, steps, strict=True):
                    self._store_tat(bucket_id, limit, step.tat, now_ns)
                if self._writes_through:
                    self._persist(
                        [
                            (bid, lim, st.tat)
                            for bid, lim, st in zip(ids, limits, steps, strict=True)
                        ],
                        now_ns,
                    )
        if changed and self._writes_through:
            self._settle()
        return decision_from_steps(limits, steps)

    def _tat(self, bucket_id: BucketId, limit: Limit, now_ns: int) -> int | None:
        bucket = self._buckets.get(bucket_id)
        if bucket is None:
            return self._load(bucket_id, limit, now_ns) if self._writes_through else None
        if bucket[1] is not limit:
            self._check_same_limit(bucket, limit)
        tat: int = bucket[0]
        return tat

    def _store_tat(self, bucket_id: BucketId, limit: Limit, tat: int | None, now_ns: int) -> None:
        if tat is None:
            self._buckets.pop(bucket_id, None)
            return
        bucket = self._buckets.get(bucket_id)
        if bucket is None:
            self._buckets[bucket_id] = [tat, limit]
            self._sweep(now_ns)
        else:
            bucket[0] = tat

    @staticmethod
    def _check_same_limit(bucket: Bucket, limit: Limit) -> None:
        known: Limit = bucket[1]
        if (known.tokens, known.period_ns, known.burst) != (
            limit.tokens,
            limit.period_ns,
            limit.burst,
        ):
            raise ConfigurationError(
                f"limit name {limit.name!r} is used with two different rates: {known} and {limit}"
            )
        bucket[1] = limit

    def _sweep(self, now_ns: int) -> None:
        """Drop full buckets from a snapshot of the table, a few per call.

        Called once per created bucket: it walks the snapshot until it has
        passed ``_SWEEP_LIVE`` live buckets, so each creation pays for the
        full buckets it meets, and a new snapshot is taken once the walk
        reaches its end. Every bucket is looked at within about ``n / 2``
        creations; amortised O(1), and at most ``_SWEEP_MAX`` per call.
        """
        queue = self._sweep_queue
        position = self._sweep_next
        if position >= len(queue):
            queue = self._sweep_queue = list(self._buckets)
            position = 0
        buckets = self._buckets
        end = min(len(queue), position + _SWEEP_MAX)
        live = 0
        dropped: list[BucketId] | None = [] if self._writes_through else None
        while position < end and live < _SWEEP_LIVE:
            bucket_id = queue[position]
            position += 1
            bucket = buckets.get(bucket_id)
            if bucket is None:
                continue
            if bucket[0] <= now_ns * bucket[1].units_per_ns:
                del buckets[bucket_id]
                if dropped is not None:
                    dropped.append(bucket_id)
            else:
                live += 1
        self._sweep_next = position
        if dropped:
            self._forget(dropped)


def open_store(url: SplitResult, options: dict[str, object], clock: Clock | None) -> MemoryStore:
    """``memory://`` takes no host, path or options.

    >>> from urllib.parse import urlsplit
    >>> len(open_store(urlsplit("memory://"), {}, None))
    0
    """
    if url.netloc or url.path not in ("", "/"):
        raise ConfigurationError(f"memory:// takes no host or path, got {url.geturl()!r}")
    unknown = split_options(url, options)
    if unknown:
        raise ConfigurationError(f"unknown option(s) for memory://: {', '.join(sorted(unknown))}")
    return MemoryStore(clock=clock)
