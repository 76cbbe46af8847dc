"""Opening a RocksDB directory (``rocksdict``, raw mode) and mapping its errors.

Recovery: RocksDB replays its write-ahead log at open, and how it treats a
damaged log is chosen here (``WAL_RECOVERY``; docs/design.md §8 says why).
A damaged log is a ``CorruptState``; with ``on_corrupt="empty"`` the store
opens with the damaged records skipped and says once what it dropped. A
log that recovered less than was fsynced (``synced_mark.py``) is the same.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "db")
>>> db, mark = open_db(path)
>>> db.get(META_KEY) == META_VALUE
True
>>> db.close(); mark.close()
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import rocksdict

from bucketcore.errors import CorruptState, StoreClosed, StoreError, StoreLocked

from .ownership import rocksdb_lock_holder
from .records import META_KEY, META_VALUE
from .synced_mark import SyncedMark

__all__ = ["WAL_RECOVERY", "mapped", "open_db", "rocksdb_options", "store_error"]

log = logging.getLogger("bucketcore.rocksdb")

# Tolerate a log that ends in an incomplete record (the tail a power loss
# leaves in ``wal`` mode, never acknowledged in ``sync``); anything else
# damaged is an error at open. RocksDB's default, point-in-time recovery,
# silently drops everything after the first damaged record.
WAL_RECOVERY = rocksdict.DBRecoveryMode.tolerate_corrupted_tail_records
# on_corrupt="empty" salvages what it can: every intact record is replayed.
SALVAGE_RECOVERY = rocksdict.DBRecoveryMode.skip_any_corrupted_record


def store_error(exc: Exception, doing: str, path: str) -> StoreError:
    """The ``StoreError`` for an exception from rocksdict or the filesystem.

    >>> store_error(OSError("disk full"), "write", "/db")
    StoreError('RocksDB store /db: write failed: disk full')
    """
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, rocksdict.DbClosedError):
        return StoreClosed(f"the RocksDB store {path} is closed")
    return StoreError(f"RocksDB store {path}: {doing} failed: {exc}")


@contextmanager
def mapped(doing: str, path: str) -> Iterator[None]:
    """Raise what the block raises as ``store_error(exc, doing, path)``."""
    try:
        yield
    except Exception as exc:
        raise store_error(exc, doing, path) from exc


def rocksdb_options(recovery: rocksdict.DBRecoveryMode | None = None) -> rocksdict.Options:
    """The options every bucketcore RocksDB is opened with."""
    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_wal_recovery_mode(recovery if recovery is not None else WAL_RECOVERY())
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


def open_db(path: str, *, on_corrupt: str = "raise") -> tuple[rocksdict.Rdict, SyncedMark]:
    """Open (or create) the store at ``path`` and its fsync mark.

    ``CorruptState`` if it is not ours, if its log is damaged or if it lost
    fsynced writes (with ``on_corrupt="empty"`` the last two are logged
    once and the store opens with what survived); ``StoreLocked`` if
    another process has the database open.
    """
    db = _open_rocksdb(path, on_corrupt)
    try:
        with mapped("open the fsync mark", path):
            mark = SyncedMark(path)
        try:
            _check_marker(db, path)
            _check_synced(db, mark, path, on_corrupt)
        except BaseException:
            mark.close()
            raise
    except BaseException:
        db.close()
        raise
    return db, mark


def _open_rocksdb(path: str, on_corrupt: str) -> rocksdict.Rdict:
    try:
        return rocksdict.Rdict(path, rocksdb_options())
    except Exception as exc:
        damage = str(exc)
        if damage.startswith("IO error") and os.path.join(path, "LOCK") in damage:
            raise StoreLocked(
                f"RocksDB store {path} is open in {rocksdb_lock_holder(path)}, yet its "
                f"owner lock {path}.owner.lock was free: was the lock file deleted or "
                "replaced while that process ran?"
            ) from exc
        if not damage.startswith("Corruption"):
            raise store_error(exc, "open", path) from exc
    if on_corrupt == "raise":
        raise CorruptState(
            f"RocksDB store {path}: its write-ahead log is damaged ({damage}), not merely "
            "cut short as a power loss leaves it. Pass on_corrupt=empty to open it with the "
            "damaged records dropped (the buckets they held read as full), or restore it"
        )
    with mapped("open, skipping damaged log records,", path):
        db = rocksdict.Rdict(path, rocksdb_options(SALVAGE_RECOVERY()))
    log.warning(
        "RocksDB store %s: its write-ahead log was damaged (%s); opened with the damaged "
        "records dropped (on_corrupt=empty): the buckets they held read as full",
        path,
        damage,
    )
    return db


def _check_marker(db: rocksdict.Rdict, path: str) -> None:
    with mapped("read the format marker", path):
        marker = db.get(META_KEY)
        if marker is None:
            iterator = db.iter()
            iterator.seek_to_first()
            foreign = iterator.valid()
            del iterator
            if not foreign:
                options = rocksdict.WriteOptions()
                options.sync = True
                db.put(META_KEY, META_VALUE, options)
    if marker is None and foreign:
        raise CorruptState(f"{path} holds a RocksDB database that is not a bucketcore store")
    if marker is not None and marker != META_VALUE:
        raise CorruptState(f"{path} has an unknown bucketcore format: {marker!r}")


def _check_synced(db: rocksdict.Rdict, mark: SyncedMark, path: str, on_corrupt: str) -> None:
    """Refuse (or log) a database that recovered less than its last fsync covered."""
    with mapped("check the fsync mark", path):
        synced = mark.read()
        recovered = mark.recovered(db)
        if synced is not None and recovered < synced:
            lost = (
                f"RocksDB store {path}: its write-ahead log lost fsynced writes (it brought "
                f"back {recovered} of {synced} fsynced batches): the log was cut short or "
                "zeroed after it was written"
            )
            if on_corrupt == "raise":
                raise CorruptState(
                    f"{lost}. Pass on_corrupt=empty to open it with what survived, or restore it"
                )
            log.warning("%s; opened with what survived (on_corrupt=empty)", lost)
        mark.write(recovered)  # what this run builds on
