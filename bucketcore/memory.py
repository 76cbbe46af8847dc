"""``memory://``: the in-process core, one lock around tables of buckets.

This is the authority for ``memory://`` and, given a persistence object
(``bucketcore.persistence``), for ``rocksdb://``. It does no I/O itself.

Each limit identity has a table ``{key: [tat, limit]}``; a missing bucket is
a full one. ``limit`` is the Limit the state was last kept under; a call
under another one (a plan changed, or merely another equal object) goes
through ``_buckets.adopt``, which converts the state (``_gcra.converted``); a drained
bucket holds ``_gcra.Held`` there instead, so no fast path ever takes it.
Full buckets carry no information, so they are dropped lazily: every 64th
created bucket, and every 1024th call, sweeps a little of a snapshot of the
tables (see bucketcore/_sweep.py), so a spike of one-off keys is released
even when later traffic creates no buckets. No thread, and no live bucket is
ever reset.

Where the C module ``bucketcore._fastpath`` was built, it answers the
commonest calls (up to eight ``Limit``s, an ASCII ``str`` key) on these
same tables under this same lock; the Python methods here remain the
reference and decide every other call (tests/test_fastpath.py holds the
two equal). docs/design.md §8 says when C hands a call over to Python.

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
import weakref
from collections.abc import Callable, Sequence
from urllib.parse import SplitResult

from bucketcore._buckets import Table, adopt, rebind
from bucketcore._gcra import (
    Held,
    Step,
    clamped,
    decision_from_steps,
    drained,
    evaluate,
    refunded,
)
from bucketcore._keys import (
    Key,
    canonical_key,
    check_call,
)
from bucketcore._python_path import PythonPath
from bucketcore._sweep import Sweep
from bucketcore.decision import Decision
from bucketcore.errors import ConfigurationError
from bucketcore.limit import Limit
from bucketcore.persistence import BucketId, Change, Persistence
from bucketcore.store import CheckedCalls, Clock, Request, split_options

try:
    from bucketcore import _fastpath
except ImportError:  # built without a C compiler, or not CPython: the Python path decides
    _fastpath = None  # type: ignore[assignment]

__all__ = ["MemoryStore", "open_store"]


_INF = math.inf
_EXACT_FLOAT_INT = 2**53  # seconds_at_least's fast case, inlined in acquire
_nextafter = math.nextafter
_new_draft = object.__new__

# Every _SWEEP_EVERY created buckets, and every _SWEEP_EVERY_CALLS calls
# (the C path counts its own), the lazy sweep (bucketcore/_sweep.py) runs.
_SWEEP_EVERY = 64
_SWEEP_EVERY_CALLS = 1024

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
    ``persistence`` (``bucketcore.persistence.Persistence``) is told every
    new state; rocksdb:// passes one per durability mode.

    >>> from bucketcore import Limit
    >>> MemoryStore().acquire("k", (Limit(10, 1.0),), 3).remaining
    7
    """

    def __init__(
        self, *, clock: Clock | None = None, persistence: Persistence | None = None
    ) -> None:
        self._clock: Clock = clock if clock is not None else time.monotonic_ns
        self.lock = self._lock = threading.Lock()  # a persistence may take it to flush
        self._persistence = persistence
        self.blocking = persistence is not None and persistence.blocking
        self._tables: dict[str, Table] = {}  # the C path holds it: never rebind
        self._sweep = Sweep(live=2 * _SWEEP_EVERY)
        self._created_since_sweep = 0
        self._sweep_every_calls = self._calls_until_sweep = _SWEEP_EVERY_CALLS  # C reads it
        self._fast: _fastpath.FastPath | None = None
        # The one-limit step inlined in Python (bucketcore/_python_path.py);
        # with a persistence, the variant that tells it every new state.
        self._python = python = PythonPath(self)
        self.checked_try_acquire: Callable[..., bool] = (
            python.try_acquire if persistence is None else python.persisted_try_acquire
        )
        self.checked_acquire: Callable[..., Decision] = (
            python.acquire if persistence is None else python.persisted_acquire
        )
        # A persistence that writes each state at once (rocksdb wal) may let
        # C write its records too: it then has a ``record_writer``.
        record_writer = getattr(persistence, "record_writer", None)
        if fast_path_available() and (persistence is None or record_writer is not None):
            # C answers up to eight Limits with an ASCII str key as the
            # checked_* methods bound now do, under the same lock and on the
            # same tables; any other call it hands to them unchanged.
            self._fast = _fastpath.FastPath(self, record_writer)
            self.checked_try_acquire = self._fast.try_acquire
            self.checked_acquire = self._fast.acquire
            self.checked_peek = self._fast.peek  # type: ignore[method-assign]
        if persistence is None:
            _per_process_stores.add(self)

    _rebind = staticmethod(rebind)  # the C path asks the store for it

    def checked_calls(self) -> CheckedCalls:
        """``checked_try_acquire``, ``checked_acquire`` and ``checked_peek``.

        They take ``Limiter.try_acquire``'s arguments and validate them, so
        the Limiter can hand its calls straight to them (bucketcore/store.py).

        >>> len(MemoryStore().checked_calls())
        3
        """
        return self.checked_try_acquire, self.checked_acquire, self.checked_peek

    def holds(self, bucket_id: BucketId) -> bool:
        """True when the bucket is in memory (its record may be stale).

        >>> MemoryStore().holds(("1/1", "k"))
        False
        """
        table = self._tables.get(bucket_id[0])
        return table is not None and bucket_id[1] in table

    def seal(self, closed_tables: dict[str, Table]) -> None:
        """From now on every call takes the Python path and meets ``closed_tables``.

        A closing persistent store passes tables that raise ``StoreClosed``.
        """
        if self._fast is not None:
            self._fast.close()
        with self._lock:
            self._tables = closed_tables

    # -- the contract ------------------------------------------------------

    def try_acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> bool:
        if self._persistence is not None:  # the Python path, whatever C would take
            return self._python.persisted_try_acquire(key, *limits, cost=cost)
        return self.checked_try_acquire(key, *limits, cost=cost)

    def acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        if self._persistence is not None:
            return self._python.persisted_acquire(key, *limits, cost=cost)
        return self.checked_acquire(key, *limits, cost=cost)

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
                tat, held_until_ns = self._state(limit, key, now_ns)
                tat = refunded(limit, tat, now_ns, tokens, held_until_ns)
                changes.append(((limit.identity, key), self._owner(limit, key), tat))
            if self._persistence is not None:
                self._persistence.stage(changes, now_ns)
            for limit, (_, _, tat) in zip(limits, changes, strict=True):
                self._set_tat(limit, key, tat, now_ns)
        if self._persistence is not None:
            self._persistence.settle()

    def drain(self, key: Key, limits: tuple[Limit, ...], seconds_ns: int) -> None:
        """Hold every limit's bucket empty until ``seconds_ns`` from now (``_gcra.drained``).

        >>> store, limit = MemoryStore(clock=lambda: 0), Limit(1, 1.0)
        >>> store.drain("k", (limit,), 5 * 10**9); store.acquire("k", (limit,), 1).retry_after
        5.000000000000001
        """
        key = canonical_key(key)
        with self._lock:
            now_ns = self._clock()
            until_ns = now_ns + seconds_ns
            changes: list[Change] = []
            owners: list[Held | None] = []
            for limit in limits:
                tat, held_until_ns = self._state(limit, key, now_ns)
                longer = held_until_ns is None or held_until_ns < until_ns  # else held already
                if longer:
                    tat = drained(limit, tat, now_ns, until_ns)
                    beyond_empty = tat > now_ns * limit.units_per_ns + limit.capacity_units
                    longer = beyond_empty
                owner = Held(limit, until_ns, seconds_ns) if longer else None
                owners.append(owner)
                changes.append(((limit.identity, key), owner or self._owner(limit, key), tat))
            if self._persistence is not None:
                self._persistence.stage(changes, now_ns)
            for limit, (_, _, tat), owner in zip(limits, changes, owners, strict=True):
                self._set_tat(limit, key, tat, now_ns, owner)
        if self._persistence is not None:
            self._persistence.settle()

    def reset(self, key: Key, limits: tuple[Limit, ...]) -> None:
        key = canonical_key(key)
        with self._lock:
            now_ns = self._clock()
            if self._persistence is not None:
                changes: list[Change] = [((limit.identity, key), limit, None) for limit in limits]
                self._persistence.stage(changes, now_ns)
            for limit in limits:
                self._set_tat(limit, key, None, now_ns)
        if self._persistence is not None:
            self._persistence.settle()

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
            steps = [self._evaluate(limit, key, now_ns, cost) for limit in limits]
            changed = consume and all(step.allowed for step in steps)
            if changed:
                if self._persistence is not None:  # first: a refused write changes nothing
                    changes: list[Change] = [
                        ((limit.identity, key), limit, step.tat)
                        for limit, step in zip(limits, steps, strict=True)
                    ]
                    self._persistence.stage(changes, now_ns)
                for limit, step in zip(limits, steps, strict=True):
                    self._set_tat(limit, key, step.tat, now_ns)
            self._calls_until_sweep -= 1
            if self._calls_until_sweep <= 0:
                self._sweep_after_calls()
        if changed and self._persistence is not None:
            self._persistence.settle()
        return decision_from_steps(limits, steps)

    def _state(self, limit: Limit, key: Key, now_ns: int) -> tuple[int | None, int | None]:
        """The bucket's state under ``limit``, clamped (and stored so), and its hold."""
        table = self._tables.get(limit.identity)
        bucket = None if table is None else table.get(key)
        if bucket is None:
            if self._persistence is not None:
                return self._load(limit, key, now_ns)
            return None, None
        if bucket[1] is not limit:
            tat = adopt(bucket, limit, now_ns)
            owner = bucket[1]
            return tat, None if owner is limit else owner.deadline(now_ns)
        # A bucket further ahead than an empty one saw the clock step back:
        # it is kept as an empty one, so the wait it reports comes true.
        tat = clamped(limit, bucket[0], now_ns * limit.units_per_ns)
        bucket[0] = tat
        return tat, None

    def _load(self, limit: Limit, key: Key, now_ns: int) -> tuple[int | None, int | None]:
        """``_state`` of a bucket not in memory: a held one stays resident, ``Held``."""
        tat, held = self._persistence.load((limit.identity, key), limit, now_ns)  # type: ignore[union-attr]
        if held is None or tat is None:
            return tat, None
        self._set_tat(limit, key, tat, now_ns, held)  # as stored: nothing to write
        return tat, held.deadline(now_ns)

    def _owner(self, limit: Limit, key: Key) -> Limit | Held:
        """What a bucket ``_state`` has just read is kept under: ``limit``, or its hold."""
        table = self._tables.get(limit.identity)
        bucket = None if table is None else table.get(key)
        return limit if bucket is None else bucket[1]

    def _evaluate(self, limit: Limit, key: Key, now_ns: int, cost: int) -> Step:
        tat, held_until_ns = self._state(limit, key, now_ns)
        return evaluate(limit, tat, now_ns, cost, held_until_ns)

    def _set_tat(
        self, limit: Limit, key: Key, tat: int | None, now_ns: int, owner: Held | None = None
    ) -> None:
        """Store a new state; ``owner`` (a drain's ``Held``) replaces ``bucket[1]`` if given."""
        table = self._tables.get(limit.identity)
        if tat is None:
            if table is not None:
                table.pop(key, None)
            return
        bucket = None if table is None else table.get(key)
        if bucket is None:
            self._create(limit, key, tat, now_ns)
            bucket = self._tables[limit.identity][key] if owner is not None else None
        else:
            bucket[0] = tat
        if owner is not None and bucket is not None:
            bucket[1] = owner

    def _create(self, limit: Limit, key: Key, tat: int, now_ns: int) -> None:
        try:
            self._tables[limit.identity][key] = [tat, limit]
        except KeyError:
            self._tables[limit.identity] = {key: [tat, limit]}
        self._created_since_sweep += 1
        if self._created_since_sweep >= _SWEEP_EVERY:
            self._created_since_sweep = 0
            self._run_sweep(now_ns)

    def _sweep_after_calls(self) -> None:
        """Every ``_SWEEP_EVERY_CALLS`` calls (lock held, the call's changes made)."""
        self._calls_until_sweep = self._sweep_every_calls
        self._run_sweep(self._clock())

    def _run_sweep(self, now_ns: int) -> None:
        dropped = self._sweep.sweep(self._tables, now_ns)
        if dropped and self._persistence is not None:
            self._persistence.forget(dropped)


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
