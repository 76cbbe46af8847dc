"""memory://'s one-limit step inlined in Python: the reference the C path is held to.

``PythonPath(store)`` decides the commonest call (one ``Limit``) under the
store's lock on its tables, as ``bucketcore/_fastpath.c`` does in C; every
other call goes to the store's general path (``MemoryStore._decide``). The
``persisted_*`` variants tell the store's persistence every new state
(rocksdb://). Both are copies of ``_gcra.evaluate`` kept for speed, listed in
its docstring with the tests that hold them equal.

>>> from bucketcore import Limit
>>> from bucketcore.memory import MemoryStore
>>> PythonPath(MemoryStore()).try_acquire("alice", Limit(1, 1.0))
True
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from bucketcore._buckets import adopt, held_decision
from bucketcore._gcra import clamped, evaluate
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
from bucketcore.limit import Limit

if TYPE_CHECKING:
    from bucketcore.memory import MemoryStore
    from bucketcore.persistence import Persistence

__all__ = ["PythonPath"]

_INF = math.inf
_EXACT_FLOAT_INT = 2**53  # seconds_at_least's fast case, inlined in acquire
_nextafter = math.nextafter
_new_draft = object.__new__


class PythonPath:
    """The inlined one-limit calls of one ``MemoryStore`` (see the module docstring)."""

    __slots__ = ("_store",)

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    def try_acquire(self, key: Key, *limits: Limit, cost: int = 1) -> bool:
        """``Limiter.try_acquire`` for memory://: it validates, then decides.

        A store with a persistence never comes here (see ``__init__``).

        >>> from bucketcore.memory import MemoryStore
        >>> PythonPath(MemoryStore()).try_acquire("alice", Limit(1, 1.0))
        True
        """
        store = self._store
        if type(key) is not str or len(key) > MAX_KEY_BYTES or not key.isascii():
            check_key(key)
            key = canonical_key(key)
        if type(cost) is not int or cost < 1:
            check_cost(cost)
        if len(limits) != 1 or type(limits[0]) is not Limit:
            return store._decide(key, check_limits(limits), cost, consume=True).allowed
        # The single-limit case of _gcra.evaluate, inlined: this is the hot path.
        limit = limits[0]
        lock = store._lock
        lock.acquire()
        try:
            now_ns = store._clock()
            now = now_ns * limit.units_per_ns
            try:
                bucket = store._tables[limit.identity].get(key)
            except KeyError:  # the limit's first bucket
                bucket = None
            if bucket is None:
                after = now + cost * limit.token_units
                if after - now > limit.capacity_units:
                    return False
                store._create(limit, key, after, now_ns)
                return True
            if bucket[1] is not limit:
                adopt(bucket, limit, now_ns)
            tat = bucket[0]
            after = (now if tat < now else tat) + cost * limit.token_units
            if after - now > limit.capacity_units:
                if bucket[1] is limit:  # not held by a drain: undo a clock step back, if any
                    bucket[0] = clamped(limit, tat, now)
                return False
            bucket[0] = after
            return True
        finally:
            store._calls_until_sweep -= 1
            if store._calls_until_sweep <= 0:
                store._sweep_after_calls()
            lock.release()

    def acquire(self, key: Key, *limits: Limit, cost: int = 1) -> Decision:
        """``Limiter.acquire`` for memory://: it validates, then decides.

        >>> from bucketcore.memory import MemoryStore
        >>> PythonPath(MemoryStore()).acquire("alice", Limit(3, 1.0)).remaining
        2
        """
        store = self._store
        if type(key) is not str or len(key) > MAX_KEY_BYTES or not key.isascii():
            check_key(key)
            key = canonical_key(key)
        if type(cost) is not int or cost < 1:
            check_cost(cost)
        if len(limits) != 1 or type(limits[0]) is not Limit:
            return store._decide(key, check_limits(limits), cost, consume=True)
        # As in checked_try_acquire; only the allowed case is inlined.
        limit = limits[0]
        lock = store._lock
        lock.acquire()
        try:
            now_ns = store._clock()
            units = limit.units_per_ns
            now = now_ns * units
            try:
                bucket = store._tables[limit.identity].get(key)
            except KeyError:  # the limit's first bucket
                bucket = None
            if bucket is None:
                tat = None
                debt = cost * limit.token_units
                if debt <= limit.capacity_units:
                    store._create(limit, key, now + debt, now_ns)
            else:
                if bucket[1] is not limit:
                    adopt(bucket, limit, now_ns)
                tat = bucket[0]
                debt = (now if tat < now else tat) + cost * limit.token_units - now
                if debt <= limit.capacity_units:
                    bucket[0] = now + debt
                elif bucket[1] is limit:  # not held by a drain: undo a clock step back
                    tat = bucket[0] = clamped(limit, tat, now)
                else:
                    return held_decision(bucket, now_ns, cost)
        finally:
            store._calls_until_sweep -= 1
            if store._calls_until_sweep <= 0:
                store._sweep_after_calls()
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

    # -- with a persistence: the single-limit calls, a little faster ---------

    # The generic ``_decide`` costs about five times memory's inlined path
    # (lists of steps, a Decision built from them), more than a RocksDB put.
    # These inline the single-limit case and stage the new state before
    # memory changes, so a refused write leaves the bucket as it was. The
    # C path (rocksdb wal) answers resident buckets and sends the rest here.

    def persisted_try_acquire(self, key: Key, *limits: Limit, cost: int = 1) -> bool:
        """``checked_try_acquire`` of a store with a persistence."""
        store = self._store
        checked = check_call(key, limits, cost)
        key = canonical_key(key)
        if len(checked) != 1:
            return store._decide(key, checked, cost, consume=True).allowed
        limit = checked[0]
        persistence: Persistence = store._persistence  # type: ignore[assignment]
        lock = store._lock
        lock.acquire()
        try:
            now_ns = store._clock()
            now = now_ns * limit.units_per_ns
            table = store._tables.get(limit.identity)
            bucket = None if table is None else table.get(key)
            if bucket is None:  # a held bucket loads beyond empty: denied below
                tat = persistence.load((limit.identity, key), limit, now_ns).tat
            else:
                if bucket[1] is not limit:
                    adopt(bucket, limit, now_ns)
                tat = bucket[0]
            after = (now if tat is None or tat < now else tat) + cost * limit.token_units
            if after - now > limit.capacity_units:
                if bucket is not None and bucket[1] is limit:  # undo a clock step back
                    bucket[0] = clamped(limit, tat, now)  # (a load is clamped already)
                return False
            persistence.stage([((limit.identity, key), limit, after)], now_ns)
            if bucket is None:
                store._create(limit, key, after, now_ns)
            else:
                bucket[0] = after
        finally:
            store._calls_until_sweep -= 1
            if store._calls_until_sweep <= 0:
                store._sweep_after_calls()
            lock.release()
        persistence.settle()
        return True

    def persisted_acquire(self, key: Key, *limits: Limit, cost: int = 1) -> Decision:
        """``checked_acquire`` of a store with a persistence."""
        store = self._store
        checked = check_call(key, limits, cost)
        key = canonical_key(key)
        if len(checked) != 1:
            return store._decide(key, checked, cost, consume=True)
        limit = checked[0]
        persistence: Persistence = store._persistence  # type: ignore[assignment]
        with store._lock:
            now_ns = store._clock()
            table = store._tables.get(limit.identity)
            bucket = None if table is None else table.get(key)
            step = store._evaluate(limit, key, now_ns, cost)
            if step.allowed:
                persistence.stage([((limit.identity, key), limit, step.tat)], now_ns)
                if bucket is None:
                    store._create(limit, key, step.tat, now_ns)
                else:
                    bucket[0] = step.tat
            store._calls_until_sweep -= 1
            if store._calls_until_sweep <= 0:
                store._sweep_after_calls()
        if step.allowed:
            persistence.settle()
        return from_nanoseconds(step.allowed, step.remaining, step.retry_ns, step.reset_ns, limit)
