"""``rocksdb:///path``: the in-memory core, made durable on one node.

The ``MemoryStore`` stays the authority: every decision is made in memory,
under its lock, and its new state goes to RocksDB (``rocksdict``, raw mode)
as the durability mode says. A restarted process reads a bucket back the
first time it is used. ``rocksdb:///var/lib/app/limits`` is an absolute path;
``rocksdb://./data/limits`` is relative to the working directory.

Durability (``durability=``), and what each mode survives:

- ``wal`` (default): each decision is in RocksDB's write-ahead log (in the
  kernel's page cache) before it returns. Survives a process crash or
  ``kill -9`` with no acknowledged decision lost; a power loss or kernel
  crash may lose what the OS had not yet written back.
- ``sync``: each decision is fsynced before it returns. Survives power loss
  (on a disk that honours fsync). Callers group-commit: one of them, the
  leader, writes the states of all waiting callers in one batch and fsyncs
  it once, outside the store lock and with the GIL released (``flush_wal``;
  rocksdict holds the GIL during a synced put, which would stall every
  thread). No background thread.
- ``periodic``: write-behind. Decisions return at memory speed; a background
  thread writes the newest state of each changed bucket every
  ``flush_interval`` seconds, and fsyncs it. A crash (process or power) loses
  at most the decisions of the last window.

Records are fixed little-endian ``struct``s (see ``_RECORD``) keyed by
(limit identity, key); a bucket that has refilled to full carries no
information, so its record is deleted (when the memory sweep drops it, and
by a lazy sweep over records older processes left behind).

One process owns a store: ``<path>.owner.lock`` is held with ``filelock``
and names the holder's pid and host. A second opener gets ``StoreLocked``
naming the holder, or waits up to ``lock_timeout`` seconds for it to close.

>>> import tempfile, os
>>> from bucketcore import Limit, Limiter
>>> path = os.path.join(tempfile.mkdtemp(), "limits")
>>> with Limiter(f"rocksdb://{path}?durability=wal") as limiter:
...     limiter.acquire("alice", Limit(3, 60.0)).remaining
2
>>> with Limiter(RocksDBStore(path)) as limiter:   # a later run sees the same bucket
...     limiter.acquire("alice", Limit(3, 60.0)).remaining
1
"""

from __future__ import annotations

import logging
import math
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn
from urllib.parse import SplitResult

from bucketcore._gcra import clamped, evaluate
from bucketcore._keys import Key, canonical_key, check_call
from bucketcore.decision import Decision, from_nanoseconds
from bucketcore.errors import (
    ConfigurationError,
    CorruptState,
    StoreClosed,
    StoreError,
    StoreLocked,
)
from bucketcore.limit import Limit
from bucketcore.memory import (
    BucketId,
    Change,
    CheckedCalls,
    MemoryStore,
    fast_path_available,
)
from bucketcore.store import Clock, split_options

try:
    import filelock
    import rocksdict
except ImportError as exc:
    raise ConfigurationError(
        f"rocksdb:// needs an optional dependency: pip install 'bucketcore[rocksdb]' ({exc})"
    ) from exc

__all__ = ["DURABILITIES", "RocksDBStore", "open_store"]

log = logging.getLogger("bucketcore.rocksdb")

DURABILITIES = ("sync", "wal", "periodic")
_ON_CORRUPT = ("raise", "empty")

# A record: format version, then the instant the bucket is full again as
# wall-clock nanoseconds plus a remainder in 1/units_per_ns of a nanosecond
# (so no fraction of a token is lost), and that denominator (so a record
# stays meaningful if a named limit's rate changes between runs).
_VERSION = 1
_RECORD = struct.Struct("<BqQQ")

# Keys: a tag byte; bucket records are tag + identity length + identity + key.
# The length prefix makes the mapping one-to-one whatever the bytes are.
_META_KEY = b"\x00bucketcore-format"
_META_VALUE = b"bucketcore records v1"
_BUCKET_TAG = b"\x01"
_BUCKET_END = b"\x02"

# The lazy disk sweep: after every _DISK_SWEEP_EVERY loads from disk (new
# buckets), look at the next _DISK_SWEEP_BATCH records and delete the full
# ones nobody holds in memory. Each load pays for about one record.
_DISK_SWEEP_EVERY = 256
_DISK_SWEEP_BATCH = 256

# Record-key prefixes are cached per limit identity; a program that makes
# endless distinct unnamed limits just starts the cache over.
_PREFIX_CACHE_MAX = 4096

# sync: the first caller of a batch waits for the others (those the last
# fsync answered) up to _SYNC_GATHER_FSYNCS times the recent write + fsync
# time, never more than _SYNC_GATHER_MAX_S, before it fsyncs a smaller batch
# itself: a straggler left out costs one more fsync, so waiting for it is
# worth about that much, and where fsync is cheap nobody waits for long.
# Measured with 8 threads on 2 vCPUs (fsync ~0.2 ms; see the comment above
# RocksDBStore._enlist): the others take 0.1-0.3 ms to come back; gathering
# up to 0.2 ms left ~3% of the batches short, and the stragglers' threads,
# still running, delayed the leader's return from its fsync; up to 0.5 or
# 1 ms left 0.3% short and made ~8% more decisions a second.
_SYNC_GATHER_FSYNCS = 2
_SYNC_GATHER_MAX_S = 0.001

WallClock = Callable[[], int]


# -- records -------------------------------------------------------------------


def _record_prefix(identity: str) -> bytes:
    name = identity.encode("utf-8", "surrogatepass")
    return _BUCKET_TAG + len(name).to_bytes(2, "big") + name


def _record_key(bucket_id: BucketId) -> bytes:
    """The RocksDB key of a bucket (``RocksDBStore._key`` caches the prefix)."""
    identity, key = bucket_id
    data = key.encode("utf-8") if type(key) is str else key
    return _record_prefix(identity) + data  # type: ignore[operator]


def _bucket_id(record_key: bytes) -> BucketId | None:
    """The bucket a record key names, or None for a key that is not ours."""
    if len(record_key) < 3 or record_key[:1] != _BUCKET_TAG:
        return None
    end = 3 + int.from_bytes(record_key[1:3], "big")
    if len(record_key) < end:
        return None
    try:
        identity = record_key[3:end].decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None
    return identity, canonical_key(record_key[end:])


def _encode(tat: int, units_per_ns: int, offset_ns: int) -> bytes:
    """A tat (monotonic units) as a record; ``offset_ns`` = wall - monotonic now."""
    full_at_ns, remainder = divmod(tat, units_per_ns)
    try:
        return _RECORD.pack(_VERSION, full_at_ns + offset_ns, remainder, units_per_ns)
    except struct.error as exc:
        raise StoreError(f"bucket state out of the record's range: {exc}") from exc


def _decode(value: bytes) -> tuple[int, int, int]:
    """(full_at_wall_ns, remainder, units_per_ns); ValueError names what is wrong."""
    if len(value) != _RECORD.size:
        raise ValueError(f"record is {len(value)} bytes, expected {_RECORD.size}")
    version, full_at_ns, remainder, units = _RECORD.unpack(value)
    if version != _VERSION:
        raise ValueError(f"unknown record format version {version}")
    if units < 1 or remainder >= units:
        raise ValueError(f"remainder {remainder} is not a fraction of 1/{units} ns")
    return full_at_ns, remainder, units


def _restored(limit: Limit, now_ns: int, full_at_ns: int, remainder: int, units: int) -> int | None:
    """A bucket's tat in ``limit``'s units, clamped to [full, empty] at ``now_ns``.

    ``full_at_ns + remainder / units`` is the monotonic instant the bucket is
    full. A clock step between runs can move it anywhere: before ``now`` it
    is simply a full bucket (never more), and it is cut to ``now + capacity``
    (an empty bucket's wait, never longer). A remainder in other units is
    rounded up: the caller waits the longer side of a unit.
    """
    units_per_ns = limit.units_per_ns
    if units != units_per_ns:
        remainder = -(-remainder * units_per_ns // units)
    tat = full_at_ns * units_per_ns + remainder
    now = now_ns * units_per_ns
    if tat <= now:
        return None
    return min(tat, now + limit.capacity_units)


# -- errors, in one place --------------------------------------------------------


def _store_error(exc: Exception, doing: str, path: str) -> StoreError:
    """The ``StoreError`` for an exception from rocksdict or the filesystem."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, rocksdict.DbClosedError):
        return StoreClosed(f"the RocksDB store {path} is closed")
    return StoreError(f"RocksDB store {path}: {doing} failed: {exc}")


class _Waiter:
    """One caller waiting for an fsync; it sleeps on ``lock`` until woken.

    It is woken once: answered (``error`` is its batch's outcome; it then
    wakes ``next``, the next caller of its batch), or told to lead (write
    and fsync the batch itself). Its fields are written under the store
    lock, before the wake that makes them visible.

    >>> first, second = _Waiter(), _Waiter()
    >>> first.next = second
    >>> first.wake()
    >>> first.lock.acquire(timeout=0), second.lock.acquire(timeout=0)
    (True, False)
    """

    __slots__ = (
        "abandoned",
        "error",
        "gathers",
        "leads",
        "lock",
        "next",
        "overdue",
        "taken",
        "woken",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lock.acquire()
        self.error: StoreError | None = None
        self.next: _Waiter | None = None
        self.leads = False  # it writes and fsyncs its batch
        self.gathers = False  # it waits a little for its batch to fill, then leads
        self.overdue = False  # it stopped gathering while another batch was in flight
        self.taken = False  # a leader took its batch: the answer is on its way
        self.abandoned = False  # interrupted after that: the chain of wake-ups skips it
        self.woken = False

    def lead(self) -> None:
        self.leads = True
        self.wake()

    def wake(self) -> None:
        if not self.woken:
            self.woken = True
            self.lock.release()


class _ClosedTable(dict[Any, Any]):
    """Replaces the bucket tables on close, so every later call raises."""

    def _closed(self, *args: object) -> NoReturn:
        raise StoreClosed("this RocksDB store is closed")

    get = pop = __getitem__ = __contains__ = _closed


# -- options -----------------------------------------------------------------------


def _choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if type(value) is not str or value not in choices:
        raise ConfigurationError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _seconds(name: str, value: object, *, allow_zero: bool, allow_inf: bool) -> float:
    if type(value) is str:
        try:
            seconds = float(value)
        except ValueError:
            raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}") from None
    elif type(value) in (int, float):
        seconds = float(value)  # type: ignore[arg-type]
    else:
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}")
    if math.isnan(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigurationError(f"{name} must be a number of seconds {bound}, got {value!r}")
    if math.isinf(seconds) and not allow_inf:
        raise ConfigurationError(f"{name} must be finite, got {value!r}")
    return seconds


def _rocksdb_options() -> rocksdict.Options:
    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(True)
    # Records are 25 bytes, rewritten on every decision. Measured with raw
    # puts and gets of such records (200k each, hot key and 1,000 keys):
    # in-place memtable updates made a put ~10% cheaper (2.8 -> 2.6 us) and a
    # read ~40% (1.1 -> 0.63 us), because the memtable no longer keeps one
    # version per decision. They need single-writer memtables, which our lock
    # gives anyway. A 64 MB write buffer or pipelined writes measured no gain.
    options.set_allow_concurrent_memtable_write(False)
    options.set_inplace_update_support(True)
    # RocksDB's info LOG gains a file per open; keep the directory bounded.
    options.set_keep_log_file_num(3)
    return options


# -- the store -------------------------------------------------------------------


class RocksDBStore(MemoryStore):
    """The memory core, written through to a RocksDB directory at ``path``.

    ``durability``: ``"wal"`` (default), ``"sync"`` or ``"periodic"`` (see the
    module docstring). ``flush_interval``: seconds between periodic flushes.
    ``lock_timeout``: seconds to wait for another owner to close (0: fail at
    once with ``StoreLocked``). ``on_corrupt``: ``"raise"`` (``CorruptState``)
    or ``"empty"`` (log it and treat the bucket as empty, never as full).
    ``clock`` is monotonic ns; ``wall_clock`` is wall-clock ns (for tests).
    ``blocking`` is true in ``sync`` mode, whose changing calls wait for an
    fsync: ``AsyncLimiter`` runs those in a worker thread.

    >>> import tempfile, os
    >>> from bucketcore import Limit
    >>> store = RocksDBStore(os.path.join(tempfile.mkdtemp(), "db"), durability="sync")
    >>> store.try_acquire("k", (Limit(1, 60.0),), 1), store.try_acquire("k", (Limit(1, 60.0),), 1)
    (True, False)
    >>> store.close()
    """

    _writes_through = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: str = "wal",
        flush_interval: float = 1.0,
        lock_timeout: float = 0.0,
        on_corrupt: str = "raise",
        clock: Clock | None = None,
        wall_clock: WallClock | None = None,
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            raise ConfigurationError(f"path must be a str or path, got {path!r}")
        self.path = os.path.abspath(os.fspath(path))
        self.durability = _choice("durability", durability, DURABILITIES)
        self.flush_interval = _seconds(
            "flush_interval", flush_interval, allow_zero=False, allow_inf=False
        )
        self.lock_timeout = _seconds("lock_timeout", lock_timeout, allow_zero=True, allow_inf=True)
        self.on_corrupt = _choice("on_corrupt", on_corrupt, _ON_CORRUPT)
        self._periodic = self.durability == "periodic"
        self._group_commit = self.durability == "sync"
        # Changing calls wait for an fsync: AsyncLimiter runs them in a thread.
        self.blocking = self._group_commit
        # periodic and sync keep new states in memory (self._dirty) until a
        # flush writes them in one batch; wal writes each one as it is made.
        self._deferred = self._periodic or self._group_commit
        if wall_clock is not None and not callable(wall_clock):
            raise ConfigurationError(f"wall_clock must be callable, got {wall_clock!r}")
        super().__init__(clock=clock)
        self._wall: WallClock = wall_clock if wall_clock is not None else time.time_ns
        self._closed = False
        self._close_lock = threading.Lock()
        self._loads = 0
        self._prefixes: dict[str, bytes] = {}
        self._sweep_cursor = _BUCKET_TAG
        # sync (all under the store lock): the callers waiting for the next
        # fsync, how many are expected, the one gathering them, and whether
        # a leader is writing and fsyncing a batch.
        self._sync_batch: list[_Waiter] = []
        self._sync_want = 1
        self._sync_gather_s = _SYNC_GATHER_MAX_S / 4  # until fsyncs are timed
        self._sync_gatherer: _Waiter | None = None
        self._syncing = False
        self._waiting = threading.local()  # the calling thread's _Waiter
        # periodic and sync: the newest unwritten state per bucket, (tat,
        # units) or None to delete; and the batch being written meanwhile.
        self._dirty: dict[BucketId, tuple[int, int] | None] = {}
        self._flushing: dict[BucketId, tuple[int, int] | None] = {}
        self._flush_lock = threading.Lock()
        self._background_error: StoreError | None = None

        self._owner = self._take_ownership()
        try:
            self._db = self._open_db()
        except BaseException:
            self._owner.release()
            raise
        self._write_options = rocksdict.WriteOptions()
        if type(self) is RocksDBStore and self.durability == "wal" and fast_path_available():
            # wal writes each decision as it is made: C can do the whole of it
            # (see the fast paths below), which the 10x-memory bar needs.
            self._bind_fast_path(
                RocksDBStore,
                put=self._db.put,
                write_options=self._write_options,
                wall_clock=self._wall,
                record_prefixes=self._prefixes,
                record_version=_VERSION,
            )
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()
        if self._periodic:
            self._flusher = threading.Thread(
                target=self._flush_periodically, name=f"bucketcore-flush {self.path}", daemon=True
            )
            self._flusher.start()

    def __repr__(self) -> str:
        return f"RocksDBStore({self.path!r}, durability={self.durability!r})"

    # -- opening ---------------------------------------------------------------

    def _take_ownership(self) -> filelock.BaseFileLock:
        lock_path = self.path + ".owner.lock"
        holder = f"pid={os.getpid()} host={socket.gethostname()}\n".encode()

        def write_holder(fd: int) -> None:
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder, 0)

        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            lock = filelock.FileLock(
                lock_path,
                timeout=-1 if math.isinf(self.lock_timeout) else self.lock_timeout,
                thread_local=False,
                on_acquired=write_holder,
            )
            lock.acquire()
        except filelock.Timeout:
            waited = (
                f"waited {self.lock_timeout:g} s"
                if self.lock_timeout
                else "pass lock_timeout=<seconds> to wait for it to close"
            )
            raise StoreLocked(
                f"RocksDB store {self.path} is owned by {self._holder(lock_path)} "
                f"(lock file {lock_path}); {waited}"
            ) from None
        except OSError as exc:
            raise StoreError(
                f"cannot take ownership of RocksDB store {self.path} ({lock_path}): {exc}"
            ) from exc
        return lock

    @staticmethod
    def _holder(lock_path: str) -> str:
        try:
            with open(lock_path, encoding="utf-8", errors="replace") as file:
                fields = dict(part.split("=", 1) for part in file.read().split() if "=" in part)
        except OSError:
            fields = {}
        if "pid" not in fields:
            return "another process"
        return f"pid {fields['pid']} on host {fields.get('host', '?')}"

    def _open_db(self) -> rocksdict.Rdict:
        with self._mapped("open"):
            db = rocksdict.Rdict(self.path, _rocksdb_options())
        try:
            with self._mapped("read the format marker"):
                marker = db.get(_META_KEY)
                if marker is None:
                    iterator = db.iter()
                    iterator.seek_to_first()
                    foreign = iterator.valid()
                    del iterator
                    if not foreign:
                        options = rocksdict.WriteOptions()
                        options.sync = True
                        db.put(_META_KEY, _META_VALUE, options)
            if marker is None and foreign:
                raise CorruptState(
                    f"{self.path} holds a RocksDB database that is not a bucketcore store"
                )
            if marker is not None and marker != _META_VALUE:
                raise CorruptState(f"{self.path} has an unknown bucketcore format: {marker!r}")
        except BaseException:
            db.close()
            raise
        return db

    @contextmanager
    def _mapped(self, doing: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            raise _store_error(exc, doing, self.path) from exc

    # -- the single-limit fast paths ----------------------------------------------

    # MemoryStore sends write-through stores down its generic ``_decide``;
    # measured, that path alone costs about five times the memory fast path
    # (lists of steps, a Decision built from them), more than the RocksDB put.
    # These inline the single-limit case as memory:// does, and write before
    # they update memory, so a failed write leaves the bucket as it was. In
    # wal mode the C module, where built, answers a resident bucket itself
    # (the same record, put the same way) and sends every other call here.

    def checked_try_acquire(self, key: Key, *limits: Limit, cost: int = 1) -> bool:
        """``Limiter.try_acquire`` for rocksdb://: it validates, then decides.

        >>> import tempfile, os
        >>> store = RocksDBStore(os.path.join(tempfile.mkdtemp(), "db"))
        >>> store.checked_try_acquire("alice", Limit(1, 60.0)), store.close()
        (True, None)
        """
        return self.try_acquire(key, check_call(key, limits, cost), cost)

    def checked_acquire(self, key: Key, *limits: Limit, cost: int = 1) -> Decision:
        """``Limiter.acquire`` for rocksdb://: it validates, then decides.

        >>> import tempfile, os
        >>> store = RocksDBStore(os.path.join(tempfile.mkdtemp(), "db"))
        >>> store.checked_acquire("alice", Limit(3, 60.0)).remaining, store.close()
        (2, None)
        """
        return self.acquire(key, check_call(key, limits, cost), cost)

    def checked_peek(self, key: Key, *limits: Limit, cost: int = 1) -> Decision:
        """``Limiter.peek`` for rocksdb://: it validates, then looks.

        >>> import tempfile, os
        >>> store = RocksDBStore(os.path.join(tempfile.mkdtemp(), "db"))
        >>> store.checked_peek("alice", Limit(3, 60.0)).remaining, store.close()
        (2, None)
        """
        return self.peek(key, check_call(key, limits, cost), cost)

    def checked_calls(self) -> CheckedCalls | None:
        """The entry points above, for the Limiter (see ``MemoryStore.checked_calls``).

        >>> import tempfile, os
        >>> store = RocksDBStore(os.path.join(tempfile.mkdtemp(), "db"))
        >>> store.checked_calls() is not None, store.close()
        (True, None)
        """
        if type(self) is not RocksDBStore:
            return None
        return self.checked_try_acquire, self.checked_acquire, self.checked_peek

    def try_acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> bool:
        if len(limits) != 1:
            return self._decide(key, limits, cost, consume=True).allowed
        limit = limits[0]
        if type(key) is not str:
            key = canonical_key(key)
        lock = self._lock
        lock.acquire()
        try:
            now_ns = self._clock()
            now = now_ns * limit.units_per_ns
            table = self._tables.get(limit.identity)
            bucket = None if table is None else table.get(key)
            if bucket is None:
                tat = self._load((limit.identity, key), limit, now_ns)
                after = (now if tat is None or tat < now else tat) + cost * limit.token_units
                if after - now > limit.capacity_units:
                    return False
                self._persist_one(limit, key, after, now_ns)
                self._create(limit, key, after, now_ns)
            else:
                if bucket[1] is not limit:
                    self._check_same_limit(bucket, limit)
                tat = bucket[0]
                after = (now if tat < now else tat) + cost * limit.token_units
                if after - now > limit.capacity_units:
                    # Undo a clock step back, if any, as memory:// does (in
                    # memory only: a record read back is clamped on load).
                    bucket[0] = clamped(limit, tat, now)
                    return False
                self._persist_one(limit, key, after, now_ns)
                bucket[0] = after
        finally:
            lock.release()
        if self._group_commit:
            self._settle()
        return True

    def acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        if len(limits) != 1:
            return self._decide(key, limits, cost, consume=True)
        limit = limits[0]
        if type(key) is not str:
            key = canonical_key(key)
        lock = self._lock
        lock.acquire()
        try:
            now_ns = self._clock()
            table = self._tables.get(limit.identity)
            bucket = None if table is None else table.get(key)
            if bucket is None:
                tat = self._load((limit.identity, key), limit, now_ns)
            else:
                if bucket[1] is not limit:
                    self._check_same_limit(bucket, limit)
                tat = bucket[0]
            step = evaluate(limit, tat, now_ns, cost)
            if step.allowed:
                self._persist_one(limit, key, step.tat, now_ns)
                if bucket is None:
                    self._create(limit, key, step.tat, now_ns)
                else:
                    bucket[0] = step.tat
            elif bucket is not None:
                bucket[0] = step.tat  # clamped after a clock step back, as in try_acquire
        finally:
            lock.release()
        if step.allowed and self._group_commit:
            self._settle()
        return from_nanoseconds(step.allowed, step.remaining, step.retry_ns, step.reset_ns, limit)

    def _persist_one(self, limit: Limit, key: Key, tat: int, now_ns: int) -> None:
        """``_persist`` of one new state, without the lists (the lock is held)."""
        if self._background_error is not None:
            self._raise_background_error()
        if self._deferred:
            self._dirty[(limit.identity, key)] = (tat, limit.units_per_ns)
            if self._group_commit:
                self._enlist()
            return
        units = limit.units_per_ns
        full_at_ns, remainder = divmod(tat, units)
        try:
            record = _RECORD.pack(_VERSION, full_at_ns + self._wall() - now_ns, remainder, units)
            self._db.put(self._key(limit.identity, key), record, self._write_options)
        except Exception as exc:
            raise _store_error(exc, "write", self.path) from exc

    def _key(self, identity: str, key: Key) -> bytes:
        prefix = self._prefixes.get(identity)
        if prefix is None:
            if len(self._prefixes) >= _PREFIX_CACHE_MAX:
                self._prefixes.clear()
            prefix = self._prefixes[identity] = _record_prefix(identity)
        return prefix + (key.encode("utf-8") if type(key) is str else key)  # type: ignore[operator]

    def _raise_background_error(self) -> NoReturn:
        error, self._background_error = self._background_error, None
        if error is None:
            raise StoreError("no background error")  # unreachable: callers check first
        raise error

    # -- write-through hooks (MemoryStore calls them with its lock held) --------

    def _load(self, bucket_id: BucketId, limit: Limit, now_ns: int) -> int | None:
        if self._deferred:
            for pending in (self._dirty, self._flushing):
                if bucket_id in pending:
                    state = pending[bucket_id]
                    if state is None:
                        return None
                    full_at_ns, remainder = divmod(state[0], state[1])
                    return _restored(limit, now_ns, full_at_ns, remainder, state[1])
        try:
            value = self._db.get(self._key(*bucket_id))
        except Exception as exc:
            raise _store_error(exc, "read", self.path) from exc
        offset_ns = self._wall() - now_ns
        self._loads += 1
        if self._loads >= _DISK_SWEEP_EVERY:
            self._loads = 0
            self._sweep_disk(offset_ns + now_ns)
        if value is None:
            return None
        try:
            full_at_wall_ns, remainder, units = _decode(value)
        except ValueError as exc:
            return self._corrupt(bucket_id, limit, now_ns, str(exc))
        return _restored(limit, now_ns, full_at_wall_ns - offset_ns, remainder, units)

    def _corrupt(self, bucket_id: BucketId, limit: Limit, now_ns: int, why: str) -> int:
        identity, key = bucket_id
        message = f"corrupt record in {self.path} for limit {identity!r}, key {key!r}: {why}"
        if self.on_corrupt == "raise":
            raise CorruptState(message)
        log.warning("%s; treating the bucket as empty", message)
        return now_ns * limit.units_per_ns + limit.capacity_units

    def _persist(self, changes: list[Change], now_ns: int) -> None:
        if len(changes) == 1:
            bucket_id, limit, tat = changes[0]
            if tat is not None:
                self._persist_one(limit, bucket_id[1], tat, now_ns)
                return
        if self._background_error is not None:
            self._raise_background_error()
        if self._deferred:
            dirty = self._dirty
            for bucket_id, limit, tat in changes:
                dirty[bucket_id] = None if tat is None else (tat, limit.units_per_ns)
            if self._group_commit:
                self._enlist()
            return
        offset_ns = self._wall() - now_ns
        db = self._db
        # One batch, so a crash keeps all limits of a call or none.
        batch = rocksdict.WriteBatch(raw_mode=True)
        for bucket_id, limit, tat in changes:
            if tat is None:
                batch.delete(self._key(*bucket_id))
            else:
                batch.put(self._key(*bucket_id), _encode(tat, limit.units_per_ns, offset_ns))
        with self._mapped("write"):
            db.write(batch, self._write_options)

    def _settle(self) -> None:
        if self._group_commit:
            self._await_fsync(self._waiting.waiter)

    def _forget(self, bucket_ids: list[BucketId]) -> None:
        # The buckets are full: their records may go, and losing the delete
        # in a crash loses nothing (a full record reads as a full bucket).
        if self._deferred:
            for bucket_id in bucket_ids:
                self._dirty[bucket_id] = None
            return
        batch = rocksdict.WriteBatch(raw_mode=True)
        for bucket_id in bucket_ids:
            batch.delete(self._key(*bucket_id))
        with self._mapped("delete full buckets"):
            self._db.write(batch, self._write_options)

    # -- sync: group commit ------------------------------------------------------

    # There is no syncer thread: each caller enlists (under the store lock,
    # its state pending in self._dirty) and then, with the lock released,
    # either waits or leads. The caller that brings the batch to the expected
    # size (those the last fsync answered, who usually come straight back)
    # leads: it takes every pending state, writes them in one batch and
    # fsyncs it with ``flush_wal`` (the GIL released), then answers the
    # batch. The first caller of a batch gathers: if the batch has not filled
    # in about two fsyncs' time, it leads a smaller one (a caller alone leads
    # at once). No caller holds the store lock or the GIL through an fsync,
    # and one leader at a time appends to the WAL and fsyncs it.
    #
    # Measured with 8 threads (2 vCPUs, ~8 decisions per fsync either way):
    # the CPU time of the user code is small (~3 us a decision); what a
    # batch costs besides its fsync is waking threads and handing over the
    # GIL. A dedicated syncer thread paid two more hand-offs per batch (its
    # own wake-up and the GIL back) and one more waiter to wake than a
    # leader does. Waking all followers at once is a thundering herd: each
    # wakes while the waker holds the GIL and sleeps again waiting for it
    # (~3.1 context switches per decision); woken in a chain, each by the
    # one before, most find the GIL free (~2.4), and the time between one
    # fsync and the next fell by a quarter. The chain is in batch order, and
    # each follower wakes the next before it returns to its caller, so no
    # answer waits for anything but the GIL.

    def _enlist(self) -> None:
        """Queue the calling thread for the next fsync (the store lock is held)."""
        waiter = self._waiting.waiter = _Waiter()
        self._sync_batch.append(waiter)

    def _await_fsync(self, waiter: _Waiter) -> None:
        """Return once ``waiter``'s state is fsynced, leading the batch if it falls to it.

        Raises the batch's ``StoreError`` if the write or fsync failed.
        """
        with self._lock:
            if not waiter.taken:
                if not self._syncing and len(self._sync_batch) >= self._sync_want:
                    self._syncing = waiter.leads = True
                elif self._sync_gatherer is None:
                    self._sync_gatherer = waiter
                    waiter.gathers = True
        timeout = self._sync_gather_s if waiter.gathers else -1
        try:
            if not waiter.leads and not waiter.lock.acquire(timeout=timeout):
                self._stop_gathering(waiter)
                if not waiter.leads:
                    waiter.lock.acquire()
        except BaseException:  # a KeyboardInterrupt, say: the others must not wait for it
            self._abandon(waiter)
            raise
        if waiter.next is not None:
            with self._lock:
                self._wake_chain(waiter.next)
        if waiter.leads:
            self._lead()
        if waiter.error is not None:
            raise waiter.error

    def _stop_gathering(self, waiter: _Waiter) -> None:
        """The gatherer's wait timed out: lead a smaller batch, or be next."""
        with self._lock:
            if waiter.taken or waiter.leads:
                return  # woken just now: its lock is released
            if self._syncing:
                waiter.overdue = True  # the leader in flight hands over when done
            else:
                self._syncing = waiter.leads = True

    def _lead(self) -> None:
        """Write and fsync every pending state, then answer the batch waiting for it."""
        batch: list[_Waiter] = []
        error: StoreError | None = None
        took_ns = 0
        try:
            # Every state of this batch is pending by now, or was written by
            # a flush() that holds the flush lock until it is fsynced.
            with self._flush_lock:
                with self._lock:
                    batch, self._sync_batch = self._sync_batch, []
                    self._sync_gatherer = None
                    for waiter in batch:
                        waiter.taken = True
                    pending, now_ns = self._take_pending()
                if pending:
                    started = time.perf_counter_ns()
                    self._write_pending(pending, now_ns)
                    took_ns = time.perf_counter_ns() - started
        except StoreError as exc:
            error = exc
            log.error("%s", error)
        except BaseException:
            error = StoreError(f"RocksDB store {self.path}: the fsync was interrupted")
            raise
        finally:
            with self._lock:
                self._answer(batch, error)
                self._syncing = False
                if took_ns:  # a moving average: one slow fsync does not decide
                    gather_s = self._sync_gather_s * 7 / 8 + _SYNC_GATHER_FSYNCS * took_ns / 8e9
                    self._sync_gather_s = min(gather_s, _SYNC_GATHER_MAX_S)
                self._hand_over(len(batch))

    def _answer(self, batch: list[_Waiter], error: StoreError | None) -> None:
        """Tell ``batch`` its outcome and wake the first; each wakes the next (lock held)."""
        first = None
        for waiter in reversed(batch):
            waiter.taken = True
            waiter.error = error
            if not waiter.leads:  # the leader is awake already
                waiter.next = first
                first = waiter
        if first is not None:
            self._wake_chain(first)

    @staticmethod
    def _wake_chain(waiter: _Waiter | None) -> None:
        """Wake ``waiter``, or the first after it still there (the store lock is held)."""
        while waiter is not None and waiter.abandoned:
            waiter = waiter.next
        if waiter is not None:
            waiter.wake()

    def _hand_over(self, answered: int) -> None:
        """After a batch: pass the lead to the next one if it is due (the lock is held).

        Those just answered usually come straight back: the next batch
        expects them, and leads when it has them, or when its gatherer gave up.
        """
        want, self._sync_want = self._sync_want, answered + len(self._sync_batch)
        gatherer = self._sync_gatherer
        if gatherer is not None and (gatherer.overdue or len(self._sync_batch) >= want):
            self._syncing = True
            gatherer.lead()

    def _abandon(self, waiter: _Waiter) -> None:
        """An interrupted waiter leaves: its state stays pending, nobody waits for it."""
        with self._lock:
            if waiter.taken:
                waiter.abandoned = True  # the chain of wake-ups goes round it
                self._wake_chain(waiter.next)
                return
            if waiter not in self._sync_batch:
                return
            self._sync_batch.remove(waiter)
            if waiter.leads:
                self._syncing = False
            if self._sync_gatherer is waiter:
                self._sync_gatherer = None
            if self._sync_batch and self._sync_gatherer is None:
                # Nobody would time out for the rest: the first of them leads
                # now, or right after the batch in flight.
                first = self._sync_gatherer = self._sync_batch[0]
                first.gathers = first.overdue = True
                if not self._syncing:
                    self._syncing = True
                    first.lead()

    def _stop_syncing(self, error: StoreError | None) -> None:
        """Answer everyone still waiting, at close (the store lock is held).

        Called after the final flush: what is queued is now fsynced, or
        failed with ``error``.
        """
        self._answer(self._sync_batch, error)
        self._sync_batch = []
        self._sync_gatherer = None

    # -- periodic: write-behind ----------------------------------------------------

    def _flush_periodically(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
            except StoreError as exc:
                log.exception("periodic flush of %s failed", self.path)
                self._background_error = exc

    def flush(self) -> None:
        """Write (and fsync) every pending state now; a no-op for ``wal``.

        ``periodic`` calls it every ``flush_interval``; ``close`` calls it.
        """
        if not self._deferred:
            return
        with self._flush_lock:
            with self._lock:
                pending, now_ns = self._take_pending()
            if pending:
                self._write_pending(pending, now_ns)

    def _take_pending(self) -> tuple[dict[BucketId, tuple[int, int] | None], int]:
        """The states to write, and the instant they are as of (the lock is held)."""
        pending, self._dirty = self._dirty, {}
        self._flushing = pending
        return pending, self._clock()

    def _write_pending(self, pending: dict[BucketId, tuple[int, int] | None], now_ns: int) -> None:
        """Write ``pending`` in one batch and fsync it (the lock is not held).

        Callers hold the flush lock from taking the states to here, so
        batches land in the order they were taken.
        """
        offset_ns = self._wall() - now_ns
        batch = rocksdict.WriteBatch(raw_mode=True)
        for bucket_id, state in pending.items():
            if state is None:
                batch.delete(self._key(*bucket_id))
            else:
                batch.put(self._key(*bucket_id), _encode(state[0], state[1], offset_ns))
        try:
            with self._mapped("write and fsync"):
                self._db.write(batch, self._write_options)
                self._db.flush_wal(True)
        except StoreError:
            with self._lock:  # keep them for the next attempt, newer states first
                pending.update(self._dirty)
                self._dirty = pending
            raise
        finally:
            with self._lock:
                self._flushing = {}

    # -- bounded disk ----------------------------------------------------------------

    def _sweep_disk(self, wall_now_ns: int) -> None:
        """Delete the next few full records that no one holds in memory.

        A bucket held in memory (or pending a periodic write) is the memory
        sweep's business: its record may be stale. Any other record is the
        bucket's whole state, so if it reads as full it can go.
        """
        doomed = []
        with self._mapped("sweep full records"):
            iterator = self._db.iter()
            iterator.seek(self._sweep_cursor)
            examined = 0
            while examined < _DISK_SWEEP_BATCH and iterator.valid():
                record_key = iterator.key()
                if record_key >= _BUCKET_END:
                    break
                examined += 1
                bucket_id = _bucket_id(record_key)
                if (
                    bucket_id is None
                    or self._resident(bucket_id)
                    or bucket_id in self._dirty
                    or bucket_id in self._flushing
                ):
                    iterator.next()
                    continue
                try:
                    full_at_wall_ns, remainder, _ = _decode(iterator.value())
                except ValueError:
                    iterator.next()
                    continue  # reported when the bucket is used, never deleted here
                if full_at_wall_ns < wall_now_ns or (
                    full_at_wall_ns == wall_now_ns and remainder == 0
                ):
                    doomed.append(record_key)
                iterator.next()
            more = iterator.valid() and iterator.key() < _BUCKET_END
            self._sweep_cursor = iterator.key() if more else _BUCKET_TAG
            del iterator
            if doomed:
                batch = rocksdict.WriteBatch(raw_mode=True)
                for record_key in doomed:
                    batch.delete(record_key)
                self._db.write(batch, self._write_options)

    def _resident(self, bucket_id: BucketId) -> bool:
        table = self._tables.get(bucket_id[0])
        return table is not None and bucket_id[1] in table

    # -- closing --------------------------------------------------------------------

    def close(self) -> None:
        """Write everything pending, fsync, close the database, release the lock.

        Idempotent; every later call on this store raises ``StoreClosed``.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            if self._fast is not None:
                self._fast.close()  # the Python path raises StoreClosed from here on
            error: StoreError | None = StoreClosed(f"{self.path} was closed before this fsync")
            try:
                if self._flusher is not None:
                    self._stop.set()
                    self._flusher.join()
                with self._lock:
                    self._tables = _ClosedTable()  # no new decisions from here on
                self.flush()
                with self._mapped("close"):
                    self._db.flush_wal(True)
                error = None
            except StoreError as exc:
                error = exc
                raise
            finally:
                with self._lock:
                    self._tables = _ClosedTable()
                    self._stop_syncing(error)
                    try:
                        self._db.close()
                    finally:
                        self._owner.release()


def _path_from_url(url: SplitResult) -> str:
    if url.netloc in ("", "localhost"):
        path = url.path
    elif url.netloc in (".", ".."):
        path = url.netloc + url.path
    else:
        raise ConfigurationError(
            f"rocksdb URL {url.geturl()!r}: use rocksdb:///absolute/path or "
            "rocksdb://./relative/path"
        )
    if path in ("", "/", ".", "..", "./", "../"):
        raise ConfigurationError(f"rocksdb URL {url.geturl()!r} names no directory")
    return path


def open_store(url: SplitResult, options: dict[str, object], clock: Clock | None) -> RocksDBStore:
    """``rocksdb:///abs/path`` or ``rocksdb://./relative/path`` with options.

    Options (URL query or keywords): durability, flush_interval, lock_timeout,
    on_corrupt; and, as keywords only, wall_clock.

    >>> from urllib.parse import urlsplit
    >>> open_store(urlsplit("rocksdb:///tmp/x?colour=red"), {}, None)
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: unknown option(s) for rocksdb://: colour
    """
    path = _path_from_url(url)
    merged = split_options(url, options)
    known = {"durability", "flush_interval", "lock_timeout", "on_corrupt", "wall_clock"}
    unknown = set(merged) - known
    if unknown:
        raise ConfigurationError(f"unknown option(s) for rocksdb://: {', '.join(sorted(unknown))}")
    return RocksDBStore(path, clock=clock, **merged)  # type: ignore[arg-type]
