"""The durability modes of rocksdb://, one small class each (docs/design.md §8).

Each is a ``bucketcore.persistence.Persistence`` that a ``MemoryStore`` tells
its new states: ``WalPersistence`` writes each one before the call answers,
``SyncPersistence`` group-commits them with one fsync per batch, and
``PeriodicPersistence`` writes the newest state of each bucket every
``flush_interval`` from a background thread. ``attach`` gives a mode the
memory core it persists (its lock and clock, and which buckets it holds);
``opened`` gives it the database and the fsync mark (``synced_mark.py``),
which a store opens on first use: until then ``db`` may be a stand-in that
opens the store when touched.

>>> import tempfile, os
>>> from bucketcore import Limit
>>> from bucketcore.memory import MemoryStore
>>> from bucketcore.backends.rocksdb.database import open_db
>>> db, mark = open_db(os.path.join(tempfile.mkdtemp(), "db"))
>>> wal = WalPersistence(db, "db")
>>> memory = MemoryStore(persistence=wal)
>>> wal.attach(memory); wal.opened(db, mark)
>>> memory.acquire("alice", (Limit(3, 60.0),), 1).remaining
2
>>> len([key for key in db.keys() if key[:1] == b"\\x01"])
1
>>> wal.close()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import NoReturn

import rocksdict

from bucketcore._gcra import Held
from bucketcore.errors import CorruptState, StoreClosed, StoreError
from bucketcore.limit import Limit
from bucketcore.memory import MemoryStore
from bucketcore.persistence import BucketId, Change, Loaded

from .database import mapped, store_error
from .group_commit import GroupCommit
from .records import (
    BUCKET_END,
    BUCKET_TAG,
    RECORD,
    VERSION,
    RecordKeys,
    bucket_id,
    decode,
    encode,
    restored,
    state_under,
)
from .synced_mark import SyncedMark

__all__ = ["DURABILITIES", "PeriodicPersistence", "SyncPersistence", "WalPersistence"]

log = logging.getLogger("bucketcore.rocksdb")

WallClock = Callable[[], int]
State = tuple[int, Limit | Held] | None  # (tat, owner) as memory keeps it, or None to delete
Pending = dict[BucketId, State]

# The lazy disk sweep: after every DISK_SWEEP_EVERY loads from disk (new
# buckets), look at the next DISK_SWEEP_BATCH records and delete the full
# ones nobody holds in memory. Each load pays for about one record.
DISK_SWEEP_EVERY = 256
DISK_SWEEP_BATCH = 256


class RocksDBPersistence:
    """What every mode shares: reading records back, the disk sweep, closing."""

    blocking = False

    def __init__(
        self,
        db: rocksdict.Rdict,
        path: str,
        *,
        wall_clock: WallClock | None = None,
        on_corrupt: str = "raise",
    ) -> None:
        self.db = db
        self.mark: SyncedMark | None = None  # given by opened()
        self.path = path
        self.wall_clock: WallClock = wall_clock if wall_clock is not None else time.time_ns
        self.on_corrupt = on_corrupt
        self.write_options = rocksdict.WriteOptions()
        self.keys = RecordKeys()
        self._loads = 0
        self._sweep_cursor = BUCKET_TAG
        self._memory = MemoryStore()  # replaced by attach()

    def attach(self, memory: MemoryStore) -> None:
        """Persist for ``memory`` (call once, right after making it)."""
        self._memory = memory

    def opened(self, db: rocksdict.Rdict, mark: SyncedMark) -> None:
        """The database is open (the store opens it on first use): write to it from now on."""
        self.db = db
        self.mark = mark

    # -- the Persistence contract ---------------------------------------------

    def load(self, bucket: BucketId, limit: Limit, now_ns: int) -> Loaded:
        try:
            value = self.db.get(self.keys.key(*bucket))
        except Exception as exc:
            raise store_error(exc, "read", self.path) from exc
        offset_ns = self.wall_clock() - now_ns
        self._loads += 1
        if self._loads >= DISK_SWEEP_EVERY:
            self._loads = 0
            self._sweep_disk(offset_ns + now_ns)
        if value is None:
            return Loaded(None, None)
        try:
            record = decode(value)
        except ValueError as exc:
            return Loaded(self._corrupt(bucket, limit, now_ns, str(exc)), None)
        return restored(limit, now_ns, record, offset_ns)

    def stage(self, changes: list[Change], now_ns: int) -> None:
        raise NotImplementedError  # each mode says

    def settle(self) -> None:
        """Nothing to wait for, unless the mode says otherwise."""

    def forget(self, bucket_ids: list[BucketId]) -> None:
        # The buckets are full: their records may go, and losing the delete
        # in a crash loses nothing (a full record reads as a full bucket).
        self._write([(bucket, None, None) for bucket in bucket_ids], 0, "delete full buckets")

    def flush(self) -> None:
        """Write (and fsync) every pending state now; nothing is pending in wal."""

    def close(self) -> None:
        """Flush, fsync and close the database (the memory core is sealed already)."""
        error: StoreError | None = StoreClosed(f"{self.path} was closed before this fsync")
        try:
            self._stop_background()
            self.flush()
            with mapped("close", self.path):
                batch = rocksdict.WriteBatch(raw_mode=True)
                count = self.mark.stamp(batch) if self.mark is not None else 0
                self.db.write(batch, self.write_options)
                self.db.flush_wal(True)
                if self.mark is not None:  # nothing writes any more: all of it is fsynced
                    self.mark.write(count)
            error = None
        except StoreError as exc:
            error = exc
            raise
        finally:
            with self._memory.lock:
                self._answer_waiters(error)
                self.db.close()

    # -- shared parts ----------------------------------------------------------

    def _write(
        self,
        states: list[tuple[BucketId, int | None, Limit | Held | None]],
        now_ns: int,
        doing: str,
    ) -> None:
        """One batch of (bucket, tat or None, owner), so a crash keeps all or none."""
        offset_ns = self.wall_clock() - now_ns
        batch = rocksdict.WriteBatch(raw_mode=True)
        for bucket, tat, owner in states:
            if tat is None or owner is None:
                batch.delete(self.keys.key(*bucket))
            else:
                batch.put(self.keys.key(*bucket), encode(tat, owner, offset_ns))
        with mapped(doing, self.path):
            self.db.write(batch, self.write_options)

    def _corrupt(self, bucket: BucketId, limit: Limit, now_ns: int, why: str) -> int:
        """``CorruptState``, or (on_corrupt=empty) an empty bucket in place of the record.

        The empty bucket is written over the damaged record at once, so it
        refills like any other and the damage is logged once, not per call.
        """
        identity, key = bucket
        message = f"corrupt record in {self.path} for limit {identity!r}, key {key!r}: {why}"
        if self.on_corrupt == "raise":
            raise CorruptState(message)
        empty = now_ns * limit.units_per_ns + limit.capacity_units
        self._write([(bucket, empty, limit)], now_ns, "replace a corrupt record")
        log.warning("%s; replaced by an empty bucket, which refills from now", message)
        return empty

    def _unwritten(self, bucket: BucketId) -> bool:
        """True when a newer state than the record's waits to be written."""
        return False

    def _sweep_disk(self, wall_now_ns: int) -> None:
        """Delete the next few full records that no one holds in memory.

        A bucket held in memory (or pending a write) is the memory sweep's
        business: its record may be stale. Any other record is the bucket's
        whole state, so if it reads as full it can go.
        """
        doomed = []
        with mapped("sweep full records", self.path):
            iterator = self.db.iter()
            iterator.seek(self._sweep_cursor)
            examined = 0
            while examined < DISK_SWEEP_BATCH and iterator.valid():
                key_bytes = iterator.key()
                if key_bytes >= BUCKET_END:
                    break
                examined += 1
                bucket = bucket_id(key_bytes)
                if bucket is None or self._memory.holds(bucket) or self._unwritten(bucket):
                    iterator.next()
                    continue
                try:
                    full_at_wall_ns, remainder, *_ = decode(iterator.value())
                except ValueError:
                    iterator.next()
                    continue  # reported when the bucket is used, never deleted here
                if full_at_wall_ns < wall_now_ns or (
                    full_at_wall_ns == wall_now_ns and remainder == 0
                ):
                    doomed.append(key_bytes)
                iterator.next()
            more = iterator.valid() and iterator.key() < BUCKET_END
            self._sweep_cursor = iterator.key() if more else BUCKET_TAG
            del iterator
            if doomed:
                batch = rocksdict.WriteBatch(raw_mode=True)
                for key_bytes in doomed:
                    batch.delete(key_bytes)
                self.db.write(batch, self.write_options)

    def _stop_background(self) -> None:
        """Stop a background writer, if the mode has one."""

    def _answer_waiters(self, error: StoreError | None) -> None:
        """Answer callers still waiting for an fsync, if the mode has any (lock held)."""


class WalPersistence(RocksDBPersistence):
    """``wal``: each new state is in RocksDB's write-ahead log before the call answers.

    It is also the C path's ``record_writer``: ``bucketcore/_fastpath.c``
    writes a resident bucket's record itself, with ``put`` and the fields
    below (the layout of records.py), for the common case only: a bucket
    under the call's limit, not held by a drain.
    """

    record_version = VERSION
    record_size = RECORD.size

    @property
    def record_writer(self) -> WalPersistence:
        return self

    @property
    def put(self) -> Callable[[bytes, bytes, rocksdict.WriteOptions], None]:
        # C takes this once, when the store is made, maybe before it opens
        # (never to write: no bucket is in memory before the first load).
        def put(key: bytes, record: bytes, options: rocksdict.WriteOptions) -> None:
            self.db.put(key, record, options)

        return put

    @property
    def record_prefixes(self) -> dict[str, bytes]:
        return self.keys.prefixes

    def stage(self, changes: list[Change], now_ns: int) -> None:
        if len(changes) == 1:  # records.encode inlined for the commonest change
            (identity, key), owner, tat = changes[0]
            if tat is not None and type(owner) is Limit:
                units, token_units, burst = owner.signature
                full_at_ns, remainder = divmod(tat, units)
                try:
                    record = RECORD.pack(
                        VERSION,
                        full_at_ns + self.wall_clock() - now_ns,
                        remainder,
                        units,
                        token_units,
                        burst,
                        0,
                        0,
                    )
                    self.db.put(self.keys.key(identity, key), record, self.write_options)
                except Exception as exc:
                    raise store_error(exc, "write", self.path) from exc
                return
        self._write([(b, tat, owner) for b, owner, tat in changes], now_ns, "write")


class _DeferredPersistence(RocksDBPersistence):
    """sync and periodic: new states wait in memory until a flush writes them in one batch."""

    # The newest unwritten state per bucket, and the batch being written meanwhile.
    _dirty: Pending
    _flushing: Pending
    _flush_lock: threading.Lock

    def attach(self, memory: MemoryStore) -> None:
        super().attach(memory)
        self._dirty, self._flushing = {}, {}
        self._flush_lock = threading.Lock()

    def load(self, bucket: BucketId, limit: Limit, now_ns: int) -> Loaded:
        for pending in (self._dirty, self._flushing):
            if bucket in pending:
                state = pending[bucket]
                if state is None:
                    return Loaded(None, None)
                tat, owner = state
                if type(owner) is Held:
                    held = owner.until_ns, owner.for_ns
                    return state_under(limit, now_ns, tat, owner.limit.signature, held)
                return state_under(limit, now_ns, tat, owner.signature, None)  # type: ignore[union-attr]
        return super().load(bucket, limit, now_ns)

    def stage(self, changes: list[Change], now_ns: int) -> None:
        dirty = self._dirty
        for bucket, owner, tat in changes:
            dirty[bucket] = None if tat is None else (tat, owner)

    def forget(self, bucket_ids: list[BucketId]) -> None:
        for bucket in bucket_ids:
            self._dirty[bucket] = None

    def flush(self) -> None:
        """Write (and fsync) every pending state now."""
        with self._flush_lock:
            with self._memory.lock:
                pending, now_ns = self._take_pending()
            if pending:
                self._write_pending(pending, now_ns)

    def _unwritten(self, bucket: BucketId) -> bool:
        return bucket in self._dirty or bucket in self._flushing

    def _take_pending(self) -> tuple[Pending, int]:
        """The states to write, and the instant they are as of (the lock is held)."""
        pending, self._dirty = self._dirty, {}
        self._flushing = pending
        return pending, self._memory._clock()

    def _write_pending(self, pending: Pending, now_ns: int) -> None:
        """Write ``pending`` in one batch and fsync it (the lock is not held).

        Callers hold the flush lock from taking the states to here, so
        batches land in the order they were taken.
        """
        offset_ns = self.wall_clock() - now_ns
        batch = rocksdict.WriteBatch(raw_mode=True)
        for bucket, state in pending.items():
            if state is None:
                batch.delete(self.keys.key(*bucket))
            else:
                batch.put(self.keys.key(*bucket), encode(state[0], state[1], offset_ns))
        count = self.mark.stamp(batch) if self.mark is not None else 0
        try:
            with mapped("write and fsync", self.path):
                self.db.write(batch, self.write_options)
                self.db.flush_wal(True)
                if self.mark is not None:
                    self.mark.write(count)
        except StoreError:
            with self._memory.lock:  # keep them for the next attempt, newer states first
                pending.update(self._dirty)
                self._dirty = pending
            raise
        finally:
            with self._memory.lock:
                self._flushing = {}


class SyncPersistence(_DeferredPersistence):
    """``sync``: each new state is fsynced before the call answers, one fsync per batch."""

    blocking = True  # settle waits for an fsync: AsyncLimiter runs changing calls in a thread

    def attach(self, memory: MemoryStore) -> None:
        super().attach(memory)
        self.group = GroupCommit(
            memory.lock, self._flush_lock, self._take_pending, self._write_pending, self.path
        )

    def stage(self, changes: list[Change], now_ns: int) -> None:
        super().stage(changes, now_ns)
        self.group.enlist()

    def settle(self) -> None:
        self.group.await_fsync()

    def _answer_waiters(self, error: StoreError | None) -> None:
        self.group.stop(error)


class PeriodicPersistence(_DeferredPersistence):
    """``periodic``: write-behind every ``flush_interval`` seconds, from a thread."""

    def __init__(
        self,
        db: rocksdict.Rdict,
        path: str,
        *,
        flush_interval: float,
        wall_clock: WallClock | None = None,
        on_corrupt: str = "raise",
    ) -> None:
        super().__init__(db, path, wall_clock=wall_clock, on_corrupt=on_corrupt)
        self.flush_interval = flush_interval
        self._background_error: StoreError | None = None
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    def opened(self, db: rocksdict.Rdict, mark: SyncedMark) -> None:
        super().opened(db, mark)
        self._flusher = threading.Thread(
            target=self._flush_periodically, name=f"bucketcore-flush {self.path}", daemon=True
        )
        self._flusher.start()

    def stage(self, changes: list[Change], now_ns: int) -> None:
        if self._background_error is not None:
            self._raise_background_error()
        dirty = self._dirty  # _DeferredPersistence.stage, inlined: this is periodic's hot path
        for bucket, owner, tat in changes:
            dirty[bucket] = None if tat is None else (tat, owner)

    def _flush_periodically(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
            except StoreError as exc:
                log.exception("periodic flush of %s failed", self.path)
                self._background_error = exc

    def _raise_background_error(self) -> NoReturn:
        error, self._background_error = self._background_error, None
        if error is None:
            raise StoreError("no background error")  # unreachable: callers check first
        raise error

    def _stop_background(self) -> None:
        if self._flusher is not None:
            self._stop.set()
            self._flusher.join()


DURABILITIES: dict[str, type[RocksDBPersistence]] = {
    "sync": SyncPersistence,
    "wal": WalPersistence,
    "periodic": PeriodicPersistence,
}
