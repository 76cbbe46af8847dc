"""One process's handle on an LMDB environment: open, grow, survive fork, sync.

LMDB's own locks make a write transaction exclusive across every process
of the host (a robust mutex: a writer killed -9 releases it), so this
module adds no lock file and no owner. In-process, ``lock`` is held around
every transaction: LMDB serialises writers anyway, and it lets the map be
resized (which needs no transaction open in this process) and lets a fork
happen between transactions, never inside one.

**Fork.** An LMDB handle must not be used in a child (LMDB's rule), py-lmdb
refuses to open a path twice in one process, and closing the inherited
handle while it caches a read transaction frees a reader slot the parent
still uses. So handles cache no read transaction (``max_spare_txns=0``),
the fork waits for ``lock`` (no transaction is open across it), and in the
child the inherited handle is closed, which then touches only the child's
own reader slots (none), before a fresh one is opened on first use.

**Map growth.** The map starts at ``map_size`` bytes; a write that finds
it full is aborted, the map doubled (after clearing stale readers, which
pin old pages) and the write retried, so no ``MapFullError`` reaches a
user. Another process's growth shows as ``MapResizedError``: adopt the
new size and retry.

**Durability.** ``wal``: no fsync; a committed transaction is in the shared
map, in the kernel's page cache, which outlives any process. ``sync``: LMDB
fsyncs the data pages in the commit (``metasync=False``: the meta page is
written, not yet synced), then ``sync()`` fsyncs, outside the writer lock,
once for every caller of this process that committed before it began.
``periodic``: like ``wal``, and the first commit at least ``flush_interval``
after the last fsync makes the next one (no thread).

>>> import tempfile, os
>>> env = open_shared(os.path.join(tempfile.mkdtemp(), "db"), map_size=1 << 16,
...                   durability="wal", flush_interval=1.0)
>>> env.handle().info()["map_size"]
65536
>>> env.release()
"""

from __future__ import annotations

import os
import threading
import time
import weakref

import lmdb

from bucketcore.errors import ConfigurationError, StoreClosed, StoreError

__all__ = ["DURABILITIES", "Environment", "open_shared", "store_error"]

DURABILITIES = ("wal", "sync", "periodic")

_LIVE: weakref.WeakSet[Environment] = weakref.WeakSet()
# LMDB forbids opening one environment twice in a process: stores on one
# path share one Environment, counted by users, closed with the last.
_SHARED: dict[str, Environment] = {}
_SHARED_LOCK = threading.Lock()


def open_shared(path: str, *, map_size: int, durability: str, flush_interval: float) -> Environment:
    """This process's ``Environment`` at ``path``, opened or shared.

    Every store of a process on one path shares its durability, which is a
    property of the handle: asking for another one is a ``ConfigurationError``.
    """
    with _SHARED_LOCK:
        env = _SHARED.get(path)
        if env is None:
            env = _SHARED[path] = Environment(
                path, map_size=map_size, durability=durability, flush_interval=flush_interval
            )
        elif (env.durability, env.flush_interval) != (durability, flush_interval):
            raise ConfigurationError(
                f"lmdb://{path} is open in this process with durability={env.durability} "
                f"flush_interval={env.flush_interval:g}; every store on one path shares them"
            )
        env.users += 1
        return env


def store_error(exc: BaseException, doing: str, path: str) -> StoreError:
    """The ``StoreError`` for an exception from LMDB or the filesystem.

    >>> store_error(lmdb.DiskError("full"), "commit", "/x")
    StoreError('LMDB store /x: commit failed: full')
    """
    if isinstance(exc, StoreError):
        return exc
    return StoreError(f"LMDB store {path}: {doing} failed: {exc}")


class Environment:
    """An LMDB environment at ``path``, usable from this process and its children."""

    def __init__(
        self,
        path: str,
        *,
        map_size: int,
        durability: str = "wal",
        flush_interval: float = 1.0,
    ) -> None:
        self.path = path
        self.durability = durability
        self.flush_interval = flush_interval
        self.fsyncs = durability != "wal"  # committed() has work to do
        self.users = 0
        self.lock = threading.Lock()
        self._map_size = map_size
        self._flush_interval_ns = int(flush_interval * 1e9)
        self._handle: lmdb.Environment | None = None
        self._pid = 0
        self._closed = False
        # sync: commits counted and fsynced, under _sync_lock (a group commit).
        self._sync_lock = threading.Lock()
        self._committed = 0
        self._synced = 0
        self._last_sync_ns = time.monotonic_ns()
        self._open()
        _LIVE.add(self)

    def _open(self) -> lmdb.Environment:
        sync = self.durability == "sync"
        try:
            handle = lmdb.open(
                self.path,
                map_size=self._map_size,
                subdir=True,
                create=True,
                writemap=True,  # measured: a decision's commit 0.8 us, 1.8 us without
                sync=sync,
                metasync=False,
                map_async=False,
                readahead=False,
                max_spare_txns=0,  # see Fork in the module docstring
                max_readers=1024,
                lock=True,
            )
            handle.reader_check()  # slots left by processes killed during a read
        except lmdb.Error as exc:
            raise store_error(exc, "open", self.path) from exc
        self._handle = handle
        self._pid = os.getpid()
        return handle

    @property
    def current(self) -> lmdb.Environment | None:
        """The handle if it is open and this process's, else None (no side effects)."""
        return self._handle if self._pid == _pid[0] else None

    def handle(self) -> lmdb.Environment:
        """This process's handle (opened afresh in a forked child); ``lock`` is held.

        Reading ``_handle`` and a pid check are all a call pays: the fork
        hook clears ``_handle`` in the child, and the pid catches a fork
        the hook did not see (``os.fork`` runs it; a C-level fork may not).
        """
        handle = self._handle
        if handle is not None and self._pid == _pid[0]:
            return handle
        if self._closed:
            raise StoreClosed(f"the LMDB store {self.path} is closed")
        return self._open()

    # -- map growth ------------------------------------------------------------

    def grow(self) -> None:
        """Double the map after a ``MapFullError`` (``lock`` held, no transaction open)."""
        handle = self.handle()
        try:
            handle.reader_check()
            self._map_size = max(self._map_size, handle.info()["map_size"]) * 2
            handle.set_mapsize(self._map_size)
        except lmdb.Error as exc:
            raise store_error(exc, f"grow the map to {self._map_size} bytes", self.path) from exc

    def adopt_size(self) -> None:
        """Map the size another process grew the file to (``lock`` held)."""
        handle = self.handle()
        try:
            handle.set_mapsize(0)
            self._map_size = handle.info()["map_size"]
        except lmdb.Error as exc:
            raise store_error(exc, "adopt the grown map", self.path) from exc

    # -- durability ------------------------------------------------------------

    def committed(self) -> None:
        """After a commit, with ``lock`` released: fsync as ``durability`` says."""
        if self.durability == "wal":
            return
        if self.durability == "sync":
            self._group_sync()
        elif time.monotonic_ns() - self._last_sync_ns >= self._flush_interval_ns:
            self.sync()

    def _group_sync(self) -> None:
        # Every commit counted before an fsync began is durable once it ends.
        with self._sync_lock:
            self._committed += 1
            mine = self._committed
        with self._sync_lock:
            if self._synced >= mine:
                return  # a caller's fsync began after this commit
            covered = self._committed
            self._fsync()
            self._synced = covered

    def sync(self) -> None:
        """fsync the environment now (``close`` and ``periodic`` call it)."""
        with self._sync_lock:
            self._fsync()

    def _fsync(self) -> None:
        handle = self._handle
        if handle is None or self._pid != _pid[0]:
            return
        try:
            handle.sync(True)
        except lmdb.Error as exc:
            raise store_error(exc, "fsync", self.path) from exc
        self._last_sync_ns = time.monotonic_ns()

    # -- closing and forking -----------------------------------------------------

    def release(self) -> None:
        """One user is done; the last one closes the environment."""
        with _SHARED_LOCK:
            self.users -= 1
            if self.users > 0:
                return
            if _SHARED.get(self.path) is self:
                del _SHARED[self.path]
        self.close()

    def close(self) -> None:
        """fsync (unless ``wal``) and close; idempotent."""
        with self.lock:
            if self._closed:
                return
            self._closed = True
            handle, self._handle = self._handle, None
            if handle is None or self._pid != _pid[0]:
                return
            try:
                if self.durability != "wal":
                    handle.sync(True)
            except lmdb.Error as exc:
                raise store_error(exc, "fsync at close", self.path) from exc
            finally:
                handle.close()

    def _before_fork(self) -> None:
        self.lock.acquire()

    def _after_fork_in_parent(self) -> None:
        self.lock.release()

    def _after_fork_in_child(self) -> None:
        handle, self._handle = self._handle, None
        self.lock = threading.Lock()
        self._sync_lock = threading.Lock()
        if handle is not None:
            # No transaction is open and none is cached (see Fork above), so
            # closing touches only this process's reader slots: none.
            handle.close()


_pid = [os.getpid()]  # this process's pid, kept current by the fork hook
_forking: list[Environment] = []  # the environments whose locks a fork holds


def _take_locks() -> None:
    _forking[:] = list(_LIVE)
    for env in _forking:
        env._before_fork()


def _release_in_parent() -> None:
    for env in _forking:
        env._after_fork_in_parent()
    _forking.clear()


def _reset_in_child() -> None:
    _pid[0] = os.getpid()
    for env in _forking:
        env._after_fork_in_child()
    _forking.clear()


os.register_at_fork(
    before=_take_locks, after_in_parent=_release_in_parent, after_in_child=_reset_in_child
)
