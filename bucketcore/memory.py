"""``memory://``: the in-process core, one lock around tables of buckets.

This is the authority for ``memory://`` and, with write-through hooks, for
``rocksdb://``. It does no I/O: persistence lives in subclasses.

Each limit identity has a table ``{key: [tat, limit]}``; a missing bucket is
a full one. Full buckets carry no information, so they are dropped lazily:
each call that creates a bucket also sweeps a little of a snapshot of the
tables (see ``_sweep``). No thread, and no live bucket is ever reset.

Where the C module ``bucketcore._fastpath`` was built, it answers the
commonest calls (up to eight ``Limit``s, an ASCII ``str`` key) on these
same tables under this same lock; the Python methods here remain the
reference and decide every other call (tests/test_fastpath.py holds the
two equal).

>>> from bucketcore import Limit
>>> store = MemoryStore(clock=lambda: 0)
>>> once_a_minute = (Limit(1, 60.0),)
>>> store.try_acquire("alice", once_a_minute, 1), store.try_acquire("alice", once_a_minute, 1)
(True, False)
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import types
import weakref
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import SplitResult

from bucketcore._gcra import clamped, decision_from_steps, evaluate, refunded
from bucketcore._keys import (
    MAX_KEY_BYTES,
    Key,
    canonical_key,
    check_call,
    check_cost,
    check_key,
    check_limits,
)
from bucketcore.decision import Decision, _DecisionDraft, from_nanoseconds, seconds_at_least
from bucketcore.errors import ConfigurationError
from bucketcore.limit import Limit
from bucketcore.store import Clock, Request, split_options

try:
    from bucketcore import _fastpath
except ImportError:  # built without a C compiler, or not CPython: the Python path decides
    _fastpath = None  # type: ignore[assignment]

__all__ = ["MemoryStore", "open_store"]

BucketId = tuple[str, Key]  # (limit.identity, canonical key): what write-through hooks see
Bucket = list[Any]  # [tat: int, limit: Limit]; a list so the hot path updates in place
Table = dict[Key, Bucket]
Change = tuple[BucketId, Limit, int | None]
# checked_try_acquire, checked_acquire, checked_peek: the Limiter's signatures
CheckedCalls = tuple[Callable[..., bool], Callable[..., Decision], Callable[..., Decision]]

_INF = math.inf
_EXACT_FLOAT_INT = 2**53  # seconds_at_least's fast case, inlined in acquire
_nextafter = math.nextafter
_new_draft = object.__new__

# Every _SWEEP_EVERY created buckets, sweep until twice as many live buckets
# were seen (so the tables cannot outgrow about twice their live size for
# long), but never examine more than _SWEEP_MAX entries at once (so no call
# stalls). Batching keeps the sweep's call overhead off most creations.
_SWEEP_EVERY = 64
_SWEEP_LIVE = 2 * _SWEEP_EVERY
_SWEEP_MAX = 8192

PURE_PYTHON_VARIABLE = "BUCKETCORE_PURE_PYTHON"


def fast_path_available() -> bool:
    """True when ``MemoryStore`` answers its commonest calls (and peeks) in C.

    The C module (``bucketcore/_fastpath.c``) is built when a compiler is
    there; ``BUCKETCORE_PURE_PYTHON=1`` switches it off, e.g. to compare.

    >>> isinstance(fast_path_available(), bool)
    True
    """
    return _fastpath is not None and not os.environ.get(PURE_PYTHON_VARIABLE)


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
        self._tables: dict[str, Table] = {}  # the C path holds it: never rebind
        self._sweep_identities: list[str] = []
        self._sweep_identity = ""
        self._sweep_table: Table = {}
        self._sweep_keys: list[Key] = []
        self._sweep_next = 0
        self._created_since_sweep = 0
        self._fast: _fastpath.FastPath | None = None
        if type(self) is MemoryStore and fast_path_available():
            self._bind_fast_path(MemoryStore)
        if type(self) is MemoryStore:
            _per_process_stores.add(self)

    def _bind_fast_path(self, cls: type[MemoryStore], **write_through: Any) -> None:
        # The C path answers up to eight Limits with an ASCII str key as
        # ``cls``'s checked_* methods do, under the same lock and on the same
        # tables; any other call it hands to them unchanged.
        self._fast = _fastpath.FastPath(
            tables=self._tables,
            lock=self._lock,
            clock=self._clock,
            limit_type=Limit,
            decision_type=Decision,
            slow_try_acquire=types.MethodType(cls.checked_try_acquire, self),
            slow_acquire=types.MethodType(cls.checked_acquire, self),
            slow_peek=types.MethodType(cls.checked_peek, self),
            create=self._create,
            check_same_limit=self._check_same_limit,
            seconds_at_least=seconds_at_least,
            max_key_length=MAX_KEY_BYTES,
            **write_through,
        )
        self.checked_try_acquire = self._fast.try_acquire  # type: ignore[method-assign]
        self.checked_acquire = self._fast.acquire  # type: ignore[method-assign]
        self.checked_peek = self._fast.peek  # type: ignore[method-assign]

    def checked_calls(self) -> CheckedCalls | None:
        """``checked_try_acquire``, ``checked_acquire`` and ``checked_peek``, if safe.

        They take ``Limiter.try_acquire``'s arguments and validate them, so
        the Limiter can hand its calls straight to them. Only the class that
        defines them offers them: a subclass with other hooks gets None.

        >>> MemoryStore().checked_calls() is not None
        True
        """
        if type(self) is not MemoryStore:
            return None
        return self.checked_try_acquire, self.checked_acquire, self.checked_peek

    # -- hooks for write-through subclasses (called with the lock held) ----

    def _load(self, bucket_id: BucketId, limit: Limit, now_ns: int) -> int | None:
        """The persisted ``tat`` of a bucket missing from memory, if any."""
        return None

    def _persist(self, changes: list[Change], now_ns: int) -> None:
        """Record new states (``None``: the bucket is full) before answering."""

    def _settle(self) -> None:
        """Called after the lock is released, before a changing call returns."""

    def _forget(self, bucket_ids: list[BucketId]) -> None:
        """The sweep dropped these full buckets from memory (their records may go)."""

    # -- the contract ------------------------------------------------------

    def try_acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> bool:
        if self._writes_through:
            return self._decide(key, limits, cost, consume=True).allowed
        return self.checked_try_acquire(key, *limits, cost=cost)

    def acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        if self._writes_through:
            return self._decide(key, limits, cost, consume=True)
        return self.checked_acquire(key, *limits, cost=cost)

    def checked_try_acquire(self, key: Key, *limits: Limit, cost: int = 1) -> bool:
        """``Limiter.try_acquire`` for memory://: it validates, then decides.

        Write-through subclasses never come here: ``try_acquire`` sends them
        to ``_decide``, which calls their hooks.

        >>> MemoryStore().checked_try_acquire("alice", Limit(1, 1.0))
        True
        """
        if type(key) is not str or len(key) > MAX_KEY_BYTES or not key.isascii():
            check_key(key)
            key = canonical_key(key)
        if type(cost) is not int or cost < 1:
            check_cost(cost)
        if len(limits) != 1 or type(limits[0]) is not Limit:
            return self._decide(key, check_limits(limits), cost, consume=True).allowed
        # The single-limit case of _gcra.evaluate, inlined: this is the hot path.
        limit = limits[0]
        lock = self._lock
        lock.acquire()
        try:
            now_ns = self._clock()
            now = now_ns * limit.units_per_ns
            try:
                bucket = self._tables[limit.identity].get(key)
            except KeyError:  # the limit's first bucket
                bucket = None
            if bucket is None:
                after = now + cost * limit.token_units
                if after - now > limit.capacity_units:
                    return False
                self._create(limit, key, after, now_ns)
                return True
            if bucket[1] is not limit:
                self._check_same_limit(bucket, limit)
            tat = bucket[0]
            after = (now if tat < now else tat) + cost * limit.token_units
            if after - now > limit.capacity_units:
                bucket[0] = clamped(limit, tat, now)  # undo a clock step back, if any
                return False
            bucket[0] = after
            return True
        finally:
            lock.release()

    def checked_acquire(self, key: Key, *limits: Limit, cost: int = 1) -> Decision:
        """``Limiter.acquire`` for memory://: it validates, then decides.

        >>> MemoryStore().checked_acquire("alice", Limit(3, 1.0)).remaining
        2
        """
        if type(key) is not str or len(key) > MAX_KEY_BYTES or not key.isascii():
            check_key(key)
            key = canonical_key(key)
        if type(cost) is not int or cost < 1:
            check_cost(cost)
        if len(limits) != 1 or type(limits[0]) is not Limit:
            return self._decide(key, check_limits(limits), cost, consume=True)
        # As in checked_try_acquire; only the allowed case is inlined.
        limit = limits[0]
        lock = self._lock
        lock.acquire()
        try:
            now_ns = self._clock()
            units = limit.units_per_ns
            now = now_ns * units
            try:
                bucket = self._tables[limit.identity].get(key)
            except KeyError:  # the limit's first bucket
                bucket = None
            if bucket is None:
                tat = None
                debt = cost * limit.token_units
                if debt <= limit.capacity_units:
                    self._create(limit, key, now + debt, now_ns)
            else:
                if bucket[1] is not limit:
                    self._check_same_limit(bucket, limit)
                tat = bucket[0]
                debt = (now if tat < now else tat) + cost * limit.token_units - now
                if debt <= limit.capacity_units:
                    bucket[0] = now + debt
                else:
                    tat = bucket[0] = clamped(limit, tat, now)  # undo a clock step back
        finally:
            lock.release()
        capacity = limit.capacity_units
        if debt > capacity:
            step = evaluate(limit, tat, now_ns, cost)
            return from_nanoseconds(False, step.remaining, step.retry_ns, step.reset_ns, limit)
        reset_ns = debt if units == 1 else -(-debt // units)
        # make_decision(...), inlined: the call alone is a tenth of the budget.
        decision = _new_draft(_DecisionDraft)
        decision.allowed = True
        decision.remaining = (capacity - debt) // limit.token_units
        decision.retry_after = 0.0
        decision.reset_after = (
            _nextafter(reset_ns / 1e9, _INF)
            if reset_ns < _EXACT_FLOAT_INT
            else seconds_at_least(reset_ns)
        )
        decision.limit = limit
        decision.degraded = False
        decision.__class__ = Decision  # type: ignore[assignment]
        return decision  # type: ignore[return-value]

    def peek(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        return self._decide(key, limits, cost, consume=False)

    def checked_peek(self, key: Key, *limits: Limit, cost: int = 1) -> Decision:
        """``Limiter.peek`` for memory://: it validates, then looks.

        >>> MemoryStore().checked_peek("alice", Limit(3, 1.0)).remaining
        2
        """
        return self.peek(key, check_call(key, limits, cost), cost)

    def acquire_many(self, requests: Sequence[Request]) -> list[Decision]:
        return [self.acquire(key, limits, cost) for key, limits, cost in requests]

    def refund(self, key: Key, limits: tuple[Limit, ...], tokens: int) -> None:
        key = canonical_key(key)
        with self._lock:
            now_ns = self._clock()
            changes: list[Change] = []
            for limit in limits:
                tat = refunded(limit, self._tat(limit, key, now_ns), now_ns, tokens)
                self._set_tat(limit, key, tat, now_ns)
                changes.append(((limit.identity, key), limit, tat))
            if self._writes_through:
                self._persist(changes, now_ns)
        if self._writes_through:
            self._settle()

    def reset(self, key: Key, limits: tuple[Limit, ...]) -> None:
        key = canonical_key(key)
        with self._lock:
            now_ns = self._clock()
            for limit in limits:
                self._set_tat(limit, key, None, now_ns)
            if self._writes_through:
                self._persist([((limit.identity, key), limit, None) for limit in limits], now_ns)
        if self._writes_through:
            self._settle()

    def close(self) -> None:
        """Nothing to release; the buckets stay usable (the Limiter refuses)."""

    def __len__(self) -> int:
        """How many buckets are resident (full ones may still be among them)."""
        return sum(len(table) for table in self._tables.values())

    # -- internals -----------------------------------------------------------

    def _decide(self, key: Key, limits: tuple[Limit, ...], cost: int, *, consume: bool) -> Decision:
        key = canonical_key(key)
        with self._lock:
            now_ns = self._clock()
            steps = [
                evaluate(limit, self._tat(limit, key, now_ns), now_ns, cost) for limit in limits
            ]
            changed = consume and all(step.allowed for step in steps)
            if changed:
                for limit, step in zip(limits, steps, strict=True):
                    self._set_tat(limit, key, step.tat, now_ns)
                if self._writes_through:
                    changes: list[Change] = [
                        ((limit.identity, key), limit, step.tat)
                        for limit, step in zip(limits, steps, strict=True)
                    ]
                    self._persist(changes, now_ns)
        if changed and self._writes_through:
            self._settle()
        return decision_from_steps(limits, steps)

    def _tat(self, limit: Limit, key: Key, now_ns: int) -> int | None:
        table = self._tables.get(limit.identity)
        bucket = None if table is None else table.get(key)
        if bucket is None:
            if self._writes_through:
                return self._load((limit.identity, key), limit, now_ns)
            return None
        if bucket[1] is not limit:
            self._check_same_limit(bucket, limit)
        # A bucket further ahead than an empty one saw the clock step back:
        # it is kept as an empty one, so the wait it reports comes true.
        tat: int = clamped(limit, bucket[0], now_ns * limit.units_per_ns)
        bucket[0] = tat
        return tat

    def _set_tat(self, limit: Limit, key: Key, tat: int | None, now_ns: int) -> None:
        table = self._tables.get(limit.identity)
        if tat is None:
            if table is not None:
                table.pop(key, None)
            return
        bucket = None if table is None else table.get(key)
        if bucket is None:
            self._create(limit, key, tat, now_ns)
        else:
            bucket[0] = tat

    def _create(self, limit: Limit, key: Key, tat: int, now_ns: int) -> None:
        try:
            self._tables[limit.identity][key] = [tat, limit]
        except KeyError:
            self._tables[limit.identity] = {key: [tat, limit]}
        self._created_since_sweep += 1
        if self._created_since_sweep >= _SWEEP_EVERY:
            self._created_since_sweep = 0
            self._sweep(now_ns)

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
        """Drop full buckets from a snapshot of the tables, a few per call.

        Called every ``_SWEEP_EVERY`` created buckets: it walks the snapshot
        until it has passed ``_SWEEP_LIVE`` live buckets, so creations pay
        for the full buckets they meet, and a new snapshot is taken where
        the walk ends. Every bucket is looked at within about ``n / 2``
        creations: amortised O(1), at most ``_SWEEP_MAX`` entries a call.
        """
        live = 0
        budget = _SWEEP_MAX
        snapshots_left = len(self._tables)  # each table at most once per call
        dropped: list[BucketId] | None = [] if self._writes_through else None
        while live < _SWEEP_LIVE and budget > 0:
            keys = self._sweep_keys
            position = self._sweep_next
            if position >= len(keys):
                if snapshots_left <= 0:
                    break
                snapshots_left -= 1
                self._next_sweep_table()
                continue
            table = self._sweep_table
            end = min(len(keys), position + budget)
            start = position
            while position < end and live < _SWEEP_LIVE:
                key = keys[position]
                position += 1
                bucket = table.get(key)
                if bucket is None:
                    continue
                if bucket[0] <= now_ns * bucket[1].units_per_ns:
                    del table[key]
                    if dropped is not None:
                        dropped.append((self._sweep_identity, key))
                else:
                    live += 1
            budget -= position - start
            self._sweep_next = position
        if dropped:
            self._forget(dropped)

    def _next_sweep_table(self) -> None:
        if not self._sweep_identities:
            self._sweep_identities = list(self._tables)
            if not self._sweep_identities:
                return
        identity = self._sweep_identity = self._sweep_identities.pop()
        table = self._tables.get(identity)
        if table is not None and not table:
            del self._tables[identity]  # a limit nobody uses any more
            table = None
        self._sweep_table = table if table is not None else {}
        self._sweep_keys = list(self._sweep_table)
        self._sweep_next = 0


# A memory:// store inherited by a forked child (a pre-forking server's
# worker) counts that child's calls alone: say so once per child.
_per_process_stores: weakref.WeakSet[MemoryStore] = weakref.WeakSet()


def _warn_after_fork() -> None:
    if _per_process_stores:
        logging.getLogger("bucketcore.memory").warning(
            "memory:// store inherited across fork by pid %d: its limits are now per "
            "process; use lmdb:// (one host) or redis:// to share them",
            os.getpid(),
        )


os.register_at_fork(after_in_child=_warn_after_fork)


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
