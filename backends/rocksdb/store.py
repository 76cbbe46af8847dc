"""``RocksDBStore``: a memory core and one durability mode, composed; ``open_store``.

A store opens on first use (its first decision, reset or flush), not when
it is made: a parent that only builds the app (a reloader, a pre-forking
server) never takes ownership, and the process that serves does. A store
that was open when its process forked cannot be used in the child (the
parent still owns the directory): every call there raises a ``StoreError``
that says so, and the child leaves the parent's database, lock and files
alone.

>>> import tempfile, os
>>> from bucketcore import Limit
>>> store = RocksDBStore(os.path.join(tempfile.mkdtemp(), "db"), durability="sync")
>>> store.try_acquire("k", (Limit(1, 60.0),), 1), store.try_acquire("k", (Limit(1, 60.0),), 1)
(True, False)
>>> store.close()
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any, NoReturn, cast
from urllib.parse import SplitResult

import filelock
import rocksdict

from bucketcore._keys import Key
from bucketcore._urls import directory_of
from bucketcore.decision import Decision
from bucketcore.errors import ConfigurationError, StoreClosed, StoreError
from bucketcore.limit import Limit
from bucketcore.memory import MemoryStore
from bucketcore.store import CheckedCalls, Clock, Request, split_options

from .database import open_db
from .ownership import announce, take_ownership
from .persistence import DURABILITIES, PeriodicPersistence, RocksDBPersistence, WallClock

__all__ = ["RocksDBStore", "open_store"]

_ON_CORRUPT = ("raise", "empty")


class _ClosedTable(dict[Any, Any]):
    """Replaces the bucket tables on close, so every later call raises."""

    def _closed(self, *args: object) -> NoReturn:
        raise StoreClosed("this RocksDB store is closed")

    get = pop = __getitem__ = __contains__ = _closed


class _ForkedTable(dict[Any, Any]):
    """Replaces the bucket tables in a forked child: every call says why it cannot work."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def _forked(self, *args: object) -> NoReturn:
        raise StoreError(self.message)

    get = pop = __getitem__ = __contains__ = _forked


class _Unopened:
    """The persistence's ``db`` until the store opens: touching it opens the store."""

    def __init__(self, store: RocksDBStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store._opened_db(), name)


class _Inherited:
    """The persistence's ``db`` in a forked child: the parent's database is not ours."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __getattr__(self, name: str) -> NoReturn:
        raise StoreError(self.message)


def _choice(name: str, value: object, choices: Sequence[str]) -> str:
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


class RocksDBStore:
    """The memory core, made durable in a RocksDB directory at ``path``.

    ``durability``: ``"wal"`` (default), ``"sync"`` or ``"periodic"`` (see the
    package docstring). ``flush_interval``: seconds between periodic flushes.
    ``lock_timeout``: seconds to wait for another owner to close (0: fail at
    once with ``StoreLocked``). ``on_corrupt``: ``"raise"`` (``CorruptState``)
    or ``"empty"`` (log it once; a damaged record becomes an empty bucket,
    never a full one, and a damaged log opens with what survived).
    ``create``: make missing parent directories (default: a missing parent
    is a ``ConfigurationError``, so a typo never gives a fresh, empty store).
    The store opens on first use (see the module docstring).
    ``clock`` is monotonic ns; ``wall_clock`` is wall-clock ns (for tests).
    ``blocking`` is true in ``sync`` mode, whose changing calls wait for an
    fsync: ``AsyncLimiter`` runs those in a worker thread.

    >>> import tempfile, os
    >>> store = RocksDBStore(os.path.join(tempfile.mkdtemp(), "db"))
    >>> store.checked_acquire("alice", Limit(3, 60.0)).remaining, store.close()
    (2, None)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: str = "wal",
        flush_interval: float = 1.0,
        lock_timeout: float = 0.0,
        on_corrupt: str = "raise",
        create: bool | str = False,
        clock: Clock | None = None,
        wall_clock: WallClock | None = None,
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            raise ConfigurationError(f"path must be a str or path, got {path!r}")
        self.path = os.path.abspath(os.fspath(path))
        self.create = _flag("create", create)
        _check_parent(self.path, create=self.create)
        self.durability = _choice("durability", durability, tuple(DURABILITIES))
        self.flush_interval = _seconds(
            "flush_interval", flush_interval, allow_zero=False, allow_inf=False
        )
        self.lock_timeout = _seconds("lock_timeout", lock_timeout, allow_zero=True, allow_inf=True)
        self.on_corrupt = _choice("on_corrupt", on_corrupt, _ON_CORRUPT)
        if wall_clock is not None and not callable(wall_clock):
            raise ConfigurationError(f"wall_clock must be callable, got {wall_clock!r}")
        self._closed = False
        self._close_lock = threading.Lock()
        self._open_lock = threading.Lock()  # taken with the memory lock held, never around it
        self._owner: filelock.BaseFileLock | None = None
        self._db: rocksdict.Rdict | None = None
        self._forked_from: int | None = None
        db: Any = _Unopened(self)
        persistence: RocksDBPersistence
        if self.durability == "periodic":
            persistence = PeriodicPersistence(
                db,
                self.path,
                flush_interval=self.flush_interval,
                wall_clock=wall_clock,
                on_corrupt=self.on_corrupt,
            )
        else:
            persistence = DURABILITIES[self.durability](
                db, self.path, wall_clock=wall_clock, on_corrupt=self.on_corrupt
            )
        self._persistence = persistence
        self._memory = MemoryStore(clock=clock, persistence=persistence)
        persistence.attach(self._memory)
        self.blocking = persistence.blocking

    def __repr__(self) -> str:
        return f"RocksDBStore({self.path!r}, durability={self.durability!r})"

    # -- opening on first use --------------------------------------------------

    def _opened_db(self) -> rocksdict.Rdict:
        """The database, opened (and ownership taken) on the first call that needs it."""
        with self._open_lock:
            if self._db is not None:
                return self._db
            if self._forked_from is not None:
                raise StoreError(self._inherited_message())
            if self._closed:
                raise StoreClosed("this RocksDB store is closed")
            if self.create:
                _make_parent(self.path)
            owner = take_ownership(self.path, self.lock_timeout)
            try:
                db, mark = open_db(self.path, on_corrupt=self.on_corrupt)
            except BaseException:
                owner.release()
                raise
            announce(self.path)
            self._owner = owner
            self._db = db
            self._persistence.opened(db, mark)
            _OPEN.add(self)
            return db

    def open(self) -> None:
        """Open now (take ownership, open the database) rather than on first use.

        Idempotent. For a serving process that would rather fail at start-up
        than at its first request; never in a parent that only builds the app.

        >>> import tempfile, os
        >>> store = RocksDBStore(os.path.join(tempfile.mkdtemp(), "db"))
        >>> store.open(); store.open(); store.close()
        """
        if self._db is None:
            self._opened_db()

    _open = open

    def _inherited_message(self) -> str:
        return (
            f"RocksDB store {self.path} was opened by pid {self._forked_from}, and this "
            f"process (pid {os.getpid()}) was forked from it: a RocksDB store has one owner "
            f"process, so this one can neither use nor reopen it while pid "
            f"{self._forked_from} holds it. Make no calls on the store before the fork (it "
            "opens on first use), or use lmdb:// to share limits between processes"
        )

    def _before_fork(self) -> None:
        self._memory.lock.acquire()  # no decision is halfway through across the fork

    def _after_fork_in_parent(self) -> None:
        self._memory.lock.release()

    def _after_fork_in_child(self, parent: int) -> None:
        self._forked_from = parent
        inherited = self._db
        # The parent's database must never be closed from here: a close in
        # this process would write to the parent's files behind its back.
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(inherited))
        self._db = None
        self._persistence.db = cast(rocksdict.Rdict, _Inherited(self._inherited_message()))
        self._memory.lock.release()
        self._memory.seal(_ForkedTable(self._inherited_message()))

    # -- the store contract: the memory core decides --------------------------

    def checked_calls(self) -> CheckedCalls:
        """The memory core's validating entry points (bucketcore/store.py).

        >>> import tempfile, os
        >>> store = RocksDBStore(os.path.join(tempfile.mkdtemp(), "db"))
        >>> len(store.checked_calls()), store.close()
        (3, None)
        """
        return self._memory.checked_calls()

    def checked_try_acquire(self, key: Key, *limits: Limit, cost: int = 1) -> bool:
        return self._memory.checked_try_acquire(key, *limits, cost=cost)

    def checked_acquire(self, key: Key, *limits: Limit, cost: int = 1) -> Decision:
        return self._memory.checked_acquire(key, *limits, cost=cost)

    def checked_peek(self, key: Key, *limits: Limit, cost: int = 1) -> Decision:
        return self._memory.checked_peek(key, *limits, cost=cost)

    def try_acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> bool:
        return self._memory.try_acquire(key, limits, cost)

    def acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        return self._memory.acquire(key, limits, cost)

    def peek(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        return self._memory.peek(key, limits, cost)

    def acquire_many(self, requests: Sequence[Request]) -> list[Decision]:
        self._open()
        return self._memory.acquire_many(requests)

    def refund(self, key: Key, limits: tuple[Limit, ...], tokens: int) -> None:
        self._open()
        self._memory.refund(key, limits, tokens)

    def drain(self, key: Key, limits: tuple[Limit, ...], seconds_ns: int) -> None:
        self._memory.drain(key, limits, seconds_ns)

    def reset(self, key: Key, limits: tuple[Limit, ...]) -> None:
        self._open()  # periodic stages a reset without touching the database
        self._memory.reset(key, limits)

    def flush(self) -> None:
        """Write (and fsync) every pending state now; a no-op for ``wal``.

        ``periodic`` calls it every ``flush_interval``; ``close`` calls it.
        """
        self._open()
        self._persistence.flush()

    def __len__(self) -> int:
        """How many buckets are resident in memory."""
        return len(self._memory)

    def close(self) -> None:
        """Write everything pending, fsync, close the database, release the lock.

        Idempotent; every later call on this store raises ``StoreClosed``. A
        store never opened has nothing to write; in a forked child, the
        parent's database and lock are left as they are.
        """
        with self._close_lock:
            with self._open_lock:
                if self._closed:
                    return
                self._closed = True
                opened = self._db is not None
            if self._forked_from is not None:
                return
            self._memory.seal(_ClosedTable())  # no new decisions from here on
            if not opened:
                return
            _OPEN.discard(self)
            try:
                self._persistence.close()
            finally:
                if self._persistence.mark is not None:
                    self._persistence.mark.close()
                if self._owner is not None:
                    self._owner.release()


def _flag(name: str, value: object) -> bool:
    if type(value) is bool:
        return value
    if type(value) is str and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise ConfigurationError(f"{name} must be true or false, got {value!r}")


def _check_parent(path: str, *, create: bool) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigurationError(f"rocksdb://{path} is a file; a RocksDB store is a directory")
    parent = os.path.dirname(path)
    if not create and not os.path.isdir(parent):
        raise ConfigurationError(
            f"the directory for rocksdb://{path} does not exist: {parent} "
            "(pass create=true to make it)"
        )


def _make_parent(path: str) -> None:
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create {parent} for RocksDB store {path}: {exc}") from exc


# Open stores, so a fork can leave them alone in the child (see the module docstring).
_OPEN: weakref.WeakSet[RocksDBStore] = weakref.WeakSet()
_forking: list[tuple[int, list[RocksDBStore]]] = []


def _before_fork() -> None:
    stores = list(_OPEN)
    for store in stores:
        store._before_fork()
    _forking.append((os.getpid(), stores))


def _after_fork_in_parent() -> None:
    _, stores = _forking.pop()
    for store in stores:
        store._after_fork_in_parent()


def _after_fork_in_child() -> None:
    parent, stores = _forking.pop()
    _OPEN.clear()
    for store in stores:
        store._after_fork_in_child(parent)


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


def open_store(url: SplitResult, options: dict[str, object], clock: Clock | None) -> RocksDBStore:
    """``rocksdb:///abs/path`` or ``rocksdb://./relative/path`` with options.

    Options (URL query or keywords): durability, flush_interval, lock_timeout,
    on_corrupt, create; and, as keywords only, wall_clock.

    >>> from urllib.parse import urlsplit
    >>> open_store(urlsplit("rocksdb:///tmp/x?colour=red"), {}, None)
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: unknown option(s) for rocksdb://: colour
    """
    path = directory_of(url)
    merged = split_options(url, options)
    known = {"durability", "flush_interval", "lock_timeout", "on_corrupt", "create", "wall_clock"}
    unknown = set(merged) - known
    if unknown:
        raise ConfigurationError(f"unknown option(s) for rocksdb://: {', '.join(sorted(unknown))}")
    return RocksDBStore(path, clock=clock, **merged)  # type: ignore[arg-type]
