"""``LMDBStore``: every decision is one LMDB transaction, shared by every process.

Nothing about a bucket is kept in process memory: a call reads the
bucket's record, decides with ``bucketcore._gcra``, writes the new record
and commits, all inside one write transaction, which LMDB makes exclusive
across every process of the host. The clock is read inside it, so each
bucket sees time move forward whichever process decides.

>>> import tempfile, os
>>> from bucketcore import Limit
>>> store = LMDBStore(os.path.join(tempfile.mkdtemp(), "limits"))
>>> [store.try_acquire("alice", (Limit(2, 60.0),), 1) for _ in range(3)]
[True, True, False]
>>> store.close()
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from typing import TypeVar
from urllib.parse import SplitResult

import lmdb

from bucketcore._gcra import Step, decision_from_steps, drained, evaluate, refunded
from bucketcore._keys import MAX_KEY_BYTES, Key, check_call
from bucketcore._options import choice, flag, seconds
from bucketcore._urls import directory_of
from bucketcore.decision import Decision, from_nanoseconds, make_decision, seconds_at_least
from bucketcore.errors import ConfigurationError, CorruptState, StoreClosed
from bucketcore.limit import Limit
from bucketcore.store import CheckedCalls, Clock, Request, split_options

from .env import DURABILITIES, open_shared, store_error
from .options import (
    DEFAULT_MAP_SIZE,
    checked_path,
    map_size_option,
)
from .records import (
    ANCHOR_KEY,
    FORMAT_KEY,
    FORMAT_VALUE,
    RECORD,
    VERSION,
    Loaded,
    Value,
    anchor_for,
    boot_id,
    encode,
    record_keys,
    record_prefix,
    state_from_record,
)
from .sweep import CREATED, DUE, Sweep

__all__ = ["LMDBStore", "open_store"]

T = TypeVar("T")
Body = Callable[[lmdb.Transaction, int], tuple[T, bool]]  # (txn, anchored now) -> (result, wrote)

_PREFIX_CACHE_MAX = 4096
_unpack = RECORD.unpack


class LMDBStore:
    """Buckets in an LMDB environment (a directory) that any process may open.

    ``durability``: ``"wal"`` (default), ``"sync"`` or ``"periodic"`` (with
    ``flush_interval`` seconds); see ``env.Environment``. ``map_size``: the
    initial map in bytes (it doubles when full). ``create``: make a missing
    parent directory. ``clock`` is monotonic ns; ``wall_clock`` (wall ns) and
    ``boot`` (16 bytes) stand in for the host's, for tests.

    >>> import tempfile, os
    >>> from bucketcore import Limit
    >>> path = os.path.join(tempfile.mkdtemp(), "limits")
    >>> first, second = LMDBStore(path), LMDBStore(path)   # one handle, shared
    >>> first.try_acquire("k", (Limit(1, 60.0),), 1), second.try_acquire("k", (Limit(1, 60.0),), 1)
    (True, False)
    >>> first.close(), second.close()
    (None, None)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: str = "wal",
        flush_interval: float = 1.0,
        map_size: int = DEFAULT_MAP_SIZE,
        create: bool = False,
        clock: Clock | None = None,
        wall_clock: Callable[[], int] | None = None,
        boot: bytes | None = None,
    ) -> None:
        durability = choice("durability", durability, DURABILITIES)
        interval = seconds("flush_interval", flush_interval)
        size = map_size_option(map_size)
        self.path = checked_path(path, create=flag("create", create))
        for name, given in (("clock", clock), ("wall_clock", wall_clock)):
            if given is not None and not callable(given):
                raise ConfigurationError(f"{name} must be callable, got {given!r}")
        if boot is not None and (type(boot) is not bytes or len(boot) != 16):
            raise ConfigurationError(f"boot must be 16 bytes, got {boot!r}")
        self.durability = durability
        self.blocking = durability == "sync"  # AsyncLimiter runs changing calls in a thread
        self._clock: Clock = clock if clock is not None else time.monotonic_ns
        self._closed = False
        self._env = open_shared(
            self.path, map_size=size, durability=durability, flush_interval=interval
        )
        self._prefixes: dict[str, bytes] = {}
        self._sweep = Sweep()  # of full records (sweep.py)
        self._max_key = self._env.handle().max_key_size()
        try:
            self._offset_ns = self._anchor(wall_clock or time.time_ns, boot or boot_id())
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"LMDBStore({self.path!r}, durability={self.durability!r})"

    def _anchor(self, wall_clock: Callable[[], int], boot: bytes) -> int:
        """Check the format marker and adopt (or, first in a boot, write) the time anchor."""

        def body(txn: lmdb.Transaction, _: int) -> tuple[int, bool]:
            marker = txn.get(FORMAT_KEY)
            wrote = False
            if marker is None:
                with txn.cursor() as cursor:
                    if cursor.first():
                        raise CorruptState(f"{self.path} holds an LMDB database not made by us")
                txn.put(FORMAT_KEY, FORMAT_VALUE)
                wrote = True
            elif marker != FORMAT_VALUE:
                raise CorruptState(f"{self.path} has an unknown bucketcore format: {marker!r}")
            anchor, new = anchor_for(txn.get(ANCHOR_KEY), boot, self._clock(), wall_clock())
            if new:
                txn.put(ANCHOR_KEY, anchor.encode())
            return anchor.offset_ns, wrote or new

        self._offset_ns = 0
        return self._transact(body)

    # -- the one transaction -------------------------------------------------------

    def _transact(self, body: Body[T], *, write: bool = True) -> T:
        """Run ``body`` in one transaction at the anchored now; commit what it wrote.

        A full map is grown and another process's growth adopted, then the
        whole transaction runs again: nothing of the failed one remains.
        """
        if self._closed:
            raise StoreClosed(f"the LMDB store {self.path} is closed")
        env = self._env
        while True:
            with env.lock:
                handle = env.handle()
                try:
                    txn = handle.begin(write=write)
                except lmdb.MapResizedError:
                    env.adopt_size()
                    continue
                except lmdb.Error as exc:
                    raise store_error(exc, "begin a transaction", self.path) from exc
                try:
                    result, wrote = body(txn, self._clock() + self._offset_ns)
                    if wrote:
                        txn.commit()
                    else:
                        txn.abort()
                except lmdb.MapFullError:
                    _abort(txn)
                    env.grow()
                    continue
                except lmdb.MapResizedError:
                    _abort(txn)
                    env.adopt_size()
                    continue
                except lmdb.Error as exc:
                    _abort(txn)
                    raise store_error(exc, "decide", self.path) from exc
                except BaseException:
                    _abort(txn)
                    raise
            if wrote:
                env.committed()
            return result

    def _slot(self, limit: Limit, key: Key) -> tuple[bytes, bytes]:
        """(LMDB key, the full record key a hashed record carries) of a bucket."""
        prefix = self._prefixes.get(limit.identity)
        if prefix is None:
            if len(self._prefixes) >= _PREFIX_CACHE_MAX:
                self._prefixes.clear()
            prefix = self._prefixes[limit.identity] = record_prefix(limit.identity)
        data = key.encode("utf-8") if type(key) is str else key
        full = prefix + data  # type: ignore[operator]
        if len(full) <= self._max_key:
            return full, b""
        return record_keys(prefix, data, self._max_key)  # type: ignore[arg-type]

    # -- the contract ---------------------------------------------------------------

    def acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        if len(limits) == 1:
            decided = self._one(key, limits[0], cost, True)
            if decided is not None:
                return decided  # type: ignore[return-value]
        return self._acquire(key, limits, cost)

    def try_acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> bool:
        if len(limits) == 1:
            decided = self._one(key, limits[0], cost, False)
            if decided is not None:
                return decided  # type: ignore[return-value]
        return self._acquire(key, limits, cost).allowed

    def _acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        """Any acquire, in ``_transact``: every limit's bucket changes, or none."""
        slots = [self._slot(limit, key) for limit in limits]
        return self._transact(lambda txn, now_ns: self._decide(txn, now_ns, limits, slots, cost))

    def _one(self, key: Key, limit: Limit, cost: int, decision: bool) -> Decision | bool | None:
        """The commonest call, one limit, in one transaction with the step inlined.

        A copy of ``_gcra.evaluate`` kept for speed (listed in its
        docstring): a closure, the retry loop and a Step cost as much as
        LMDB's own transaction. Returns the Decision (with ``decision``) or
        the bool; None hands the call to ``_transact``, which runs the whole
        transaction again: closed, forked, a hashed key, a record in other
        units, a clock step back to store, a full or grown map, an error.
        """
        env = self._env
        handle = env.current
        if handle is None or self._closed:
            return None
        prefix = self._prefixes.get(limit.identity)
        if prefix is None:
            self._slot(limit, key)  # fills the cache
            prefix = self._prefixes[limit.identity]
        db_key = prefix + (key.encode() if type(key) is str else key)  # type: ignore[operator]
        if len(db_key) > self._max_key:
            return None
        units = limit.units_per_ns
        capacity = limit.capacity_units
        lock = env.lock
        lock.acquire()
        try:
            try:
                txn = handle.begin(write=True)
            except lmdb.Error:
                return None
            try:
                value = txn.get(db_key)
                now_ns = self._clock() + self._offset_ns
                now = now_ns * units
                if value is None:
                    tat = now
                else:
                    if len(value) != RECORD.size:
                        txn.abort()
                        return None
                    version, full_at_ns, remainder, *signature, held_until, _ = _unpack(value)
                    tat = full_at_ns * units + remainder
                    if (
                        version != VERSION
                        or tuple(signature) != limit.signature
                        or held_until
                        or remainder >= units
                        or tat - now > capacity
                    ):
                        # damaged, another limit's (a plan changed), held by a
                        # drain, or a clock step to clamp: the general path
                        txn.abort()
                        return None
                    if tat < now:
                        tat = now
                debt = tat + cost * limit.token_units - now
                if debt > capacity:
                    txn.abort()
                    if value is not None and tat == now:
                        return None  # a full record: the general path deletes it
                    if not decision:
                        return False
                    step = evaluate(limit, tat, now_ns, cost)
                    return from_nanoseconds(
                        False, step.remaining, step.retry_ns, step.reset_ns, limit
                    )
                txn.put(db_key, encode(now + debt, limit.signature))
                sweep = self._sweep
                sweep.count += CREATED if value is None else 1
                if sweep.count >= DUE:
                    sweep.run(txn, now_ns)
                txn.commit()
            except lmdb.Error:
                _abort(txn)
                return None
            except BaseException:
                _abort(txn)
                raise
        finally:
            lock.release()
        if env.fsyncs:
            env.committed()
        if not decision:
            return True
        reset_ns = debt if units == 1 else -(-debt // units)
        return make_decision(
            True, (capacity - debt) // limit.token_units, 0.0, seconds_at_least(reset_ns), limit
        )

    # -- the Limiter's own calls ----------------------------------------------------

    def checked_calls(self) -> CheckedCalls:
        """``checked_try_acquire``, ``checked_acquire`` and ``checked_peek``.

        The Limiter hands its calls straight to them (bucketcore/store.py),
        so the common call is validated once, inline.

        >>> import tempfile, os
        >>> store = LMDBStore(os.path.join(tempfile.mkdtemp(), "limits"))
        >>> try_acquire, acquire, peek = store.checked_calls()
        >>> acquire("alice", Limit(3, 60.0)).remaining, try_acquire("alice", Limit(3, 60.0))
        (2, True)
        >>> peek("alice", Limit(3, 60.0)).remaining   # what the next acquire would leave
        0
        >>> store.close()
        """
        return self.checked_try_acquire, self.checked_acquire, self.checked_peek

    def checked_try_acquire(self, key: Key, *limits: Limit, cost: int = 1) -> bool:
        """``Limiter.try_acquire`` for lmdb://: it validates, then decides."""
        if (
            type(key) is str
            and len(key) <= MAX_KEY_BYTES
            and key.isascii()
            and type(cost) is int
            and cost >= 1
            and len(limits) == 1
            and type(limits[0]) is Limit
        ):
            decided = self._one(key, limits[0], cost, False)
            if decided is not None:
                return decided  # type: ignore[return-value]
            return self._acquire(key, limits, cost).allowed
        return self.try_acquire(key, check_call(key, limits, cost), cost)

    def checked_acquire(self, key: Key, *limits: Limit, cost: int = 1) -> Decision:
        """``Limiter.acquire`` for lmdb://: it validates, then decides."""
        if (
            type(key) is str
            and len(key) <= MAX_KEY_BYTES
            and key.isascii()
            and type(cost) is int
            and cost >= 1
            and len(limits) == 1
            and type(limits[0]) is Limit
        ):
            decided = self._one(key, limits[0], cost, True)
            if decided is not None:
                return decided  # type: ignore[return-value]
            return self._acquire(key, limits, cost)
        return self.acquire(key, check_call(key, limits, cost), cost)

    def checked_peek(self, key: Key, *limits: Limit, cost: int = 1) -> Decision:
        """``Limiter.peek`` for lmdb://: it validates, then looks."""
        return self.peek(key, check_call(key, limits, cost), cost)

    def peek(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        slots = [self._slot(limit, key) for limit in limits]

        def body(txn: lmdb.Transaction, now_ns: int) -> tuple[Decision, bool]:
            steps = []
            for limit, (db_key, full) in zip(limits, slots, strict=True):
                loaded = _load(txn.get(db_key), limit, full, now_ns)
                steps.append(evaluate(limit, loaded.tat, now_ns, cost, _until(loaded)))
            return decision_from_steps(limits, steps), False

        return self._transact(body, write=False)

    def acquire_many(self, requests: Sequence[Request]) -> list[Decision]:
        """Every request decided in order, in one transaction at one instant."""
        planned = [
            (limits, [self._slot(limit, key) for limit in limits], cost)
            for key, limits, cost in requests
        ]

        def body(txn: lmdb.Transaction, now_ns: int) -> tuple[list[Decision], bool]:
            decisions, wrote = [], False
            for limits, slots, cost in planned:
                decision, changed = self._decide(txn, now_ns, limits, slots, cost)
                decisions.append(decision)
                wrote = wrote or changed
            return decisions, wrote

        return self._transact(body) if planned else []

    def refund(self, key: Key, limits: tuple[Limit, ...], tokens: int) -> None:
        slots = [self._slot(limit, key) for limit in limits]

        def body(txn: lmdb.Transaction, now_ns: int) -> tuple[None, bool]:
            wrote = False
            for limit, (db_key, full) in zip(limits, slots, strict=True):
                value = txn.get(db_key)
                if value is None:
                    continue  # full already
                loaded = _load(value, limit, full, now_ns)
                tat = refunded(limit, loaded.tat, now_ns, tokens, _until(loaded))
                _store(txn, db_key, full, limit, tat, now_ns, loaded.held)
                wrote = True
            return None, wrote

        self._transact(body)

    def drain(self, key: Key, limits: tuple[Limit, ...], seconds_ns: int) -> None:
        slots = [self._slot(limit, key) for limit in limits]

        def body(txn: lmdb.Transaction, now_ns: int) -> tuple[None, bool]:
            until = now_ns + seconds_ns
            for limit, (db_key, full) in zip(limits, slots, strict=True):
                loaded = _load(txn.get(db_key), limit, full, now_ns)
                if loaded.held is not None and loaded.held[0] >= until:
                    continue  # held longer already
                tat = drained(limit, loaded.tat, now_ns, until)
                _store(txn, db_key, full, limit, tat, now_ns, (until, seconds_ns))
            return None, True

        self._transact(body)

    def reset(self, key: Key, limits: tuple[Limit, ...]) -> None:
        slots = [self._slot(limit, key) for limit in limits]

        def body(txn: lmdb.Transaction, now_ns: int) -> tuple[None, bool]:
            deleted = [txn.delete(db_key) for db_key, _ in slots]
            return None, any(deleted)

        self._transact(body)

    def close(self) -> None:
        """fsync (unless ``wal``) and let go of the environment; idempotent.

        Every later call raises ``StoreClosed``.
        """
        if not self._closed:
            self._closed = True
            self._env.release()

    # -- deciding ---------------------------------------------------------------------

    def _decide(
        self,
        txn: lmdb.Transaction,
        now_ns: int,
        limits: tuple[Limit, ...],
        slots: list[tuple[bytes, bytes]],
        cost: int,
    ) -> tuple[Decision, bool]:
        """One acquire inside ``txn``: all limits' buckets change, or none."""
        values = [txn.get(db_key) for db_key, _ in slots]
        loads = [
            _load(value, limit, full, now_ns)
            for limit, value, (_, full) in zip(limits, values, slots, strict=True)
        ]
        steps: list[Step] = [
            evaluate(limit, loaded.tat, now_ns, cost, _until(loaded))
            for limit, loaded in zip(limits, loads, strict=True)
        ]
        wrote = False
        if all(step.allowed for step in steps):
            for limit, step, value, (db_key, full) in zip(
                limits, steps, values, slots, strict=True
            ):
                txn.put(db_key, encode(step.tat, limit.signature) + full)
                self._sweep.count += CREATED if value is None else 1
            wrote = True
        else:
            # Denied: a bucket the clock left ahead of an empty one is stored
            # as an empty one (so the wait reported comes true), one kept
            # under another limit is stored converted; a full one goes.
            for limit, value, loaded, (db_key, full) in zip(
                limits, values, loads, slots, strict=True
            ):
                if value is None:
                    continue
                if loaded.tat is None:
                    txn.delete(db_key)
                    wrote = True
                    continue
                record = encode(loaded.tat, limit.signature, loaded.held) + full
                if bytes(value) != record:
                    txn.put(db_key, record)
                    wrote = True
        if self._sweep.count >= DUE:
            wrote = self._sweep.run(txn, now_ns) or wrote
        return decision_from_steps(limits, steps), wrote


_FULL = Loaded(None, None)


def _load(value: Value | None, limit: Limit, full: bytes, now_ns: int) -> Loaded:
    return _FULL if value is None else state_from_record(value, limit, now_ns, full)


def _until(loaded: Loaded) -> int | None:
    return None if loaded.held is None else loaded.held[0]


def _store(
    txn: lmdb.Transaction,
    db_key: bytes,
    full: bytes,
    limit: Limit,
    tat: int | None,
    now_ns: int,
    held: tuple[int, int] | None,
) -> None:
    """Write a state; a hold only while the bucket is beyond empty; a full one goes."""
    now = now_ns * limit.units_per_ns
    if tat is None or tat <= now:
        txn.delete(db_key)
        return
    if tat <= now + limit.capacity_units:
        held = None
    txn.put(db_key, encode(tat, limit.signature, held) + full)


def _abort(txn: lmdb.Transaction) -> None:
    with contextlib.suppress(lmdb.Error):
        txn.abort()


_KNOWN = {"durability", "flush_interval", "map_size", "create", "wall_clock", "boot"}


def open_store(url: SplitResult, options: dict[str, object], clock: Clock | None) -> LMDBStore:
    """``lmdb:///abs/path`` or ``lmdb://./relative/path`` with options.

    Options (URL query or keywords): durability, flush_interval, map_size,
    create; as keywords only, wall_clock and boot (tests).

    >>> from urllib.parse import urlsplit
    >>> open_store(urlsplit("lmdb:///tmp/x?colour=red"), {}, None)
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: unknown option(s) for lmdb://: colour
    """
    path = directory_of(url)
    merged = split_options(url, options)
    unknown = set(merged) - _KNOWN
    if unknown:
        raise ConfigurationError(f"unknown option(s) for lmdb://: {', '.join(sorted(unknown))}")
    return LMDBStore(path, clock=clock, **merged)  # type: ignore[arg-type]
