"""``RocksDBStore``: a memory core and one durability mode, composed; ``open_store``.

>>> import tempfile, os
>>> from bucketcore import Limit
>>> store = RocksDBStore(os.path.join(tempfile.mkdtemp(), "db"), durability="sync")
>>> store.try_acquire("k", (Limit(1, 60.0),), 1), store.try_acquire("k", (Limit(1, 60.0),), 1)
(True, False)
>>> store.close()
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from typing import Any, NoReturn
from urllib.parse import SplitResult

from bucketcore._keys import Key
from bucketcore.decision import Decision
from bucketcore.errors import ConfigurationError, StoreClosed, StoreError
from bucketcore.limit import Limit
from bucketcore.memory import MemoryStore
from bucketcore.store import CheckedCalls, Clock, Request, split_options

from .database import open_db
from .ownership import take_ownership
from .persistence import DURABILITIES, PeriodicPersistence, RocksDBPersistence, WallClock

__all__ = ["RocksDBStore", "open_store"]

_ON_CORRUPT = ("raise", "empty")


class _ClosedTable(dict[Any, Any]):
    """Replaces the bucket tables on close, so every later call raises."""

    def _closed(self, *args: object) -> NoReturn:
        raise StoreClosed("this RocksDB store is closed")

    get = pop = __getitem__ = __contains__ = _closed


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
    or ``"empty"`` (log it and treat the bucket as empty, never as full).
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
        clock: Clock | None = None,
        wall_clock: WallClock | None = None,
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            raise ConfigurationError(f"path must be a str or path, got {path!r}")
        self.path = os.path.abspath(os.fspath(path))
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
        self._owner = take_ownership(self.path, self.lock_timeout)
        try:
            db = open_db(self.path)
        except BaseException:
            self._owner.release()
            raise
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
        return self._memory.acquire_many(requests)

    def refund(self, key: Key, limits: tuple[Limit, ...], tokens: int) -> None:
        self._memory.refund(key, limits, tokens)

    def reset(self, key: Key, limits: tuple[Limit, ...]) -> None:
        self._memory.reset(key, limits)

    def flush(self) -> None:
        """Write (and fsync) every pending state now; a no-op for ``wal``.

        ``periodic`` calls it every ``flush_interval``; ``close`` calls it.
        """
        self._persistence.flush()

    def __len__(self) -> int:
        """How many buckets are resident in memory."""
        return len(self._memory)

    def close(self) -> None:
        """Write everything pending, fsync, close the database, release the lock.

        Idempotent; every later call on this store raises ``StoreClosed``.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._memory.seal(_ClosedTable())  # no new decisions from here on
                self._persistence.close()
            except StoreError:
                raise
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
