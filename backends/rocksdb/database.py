"""Opening a RocksDB directory (``rocksdict``, raw mode) and mapping its errors.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "db")
>>> db = open_db(path)
>>> db.get(META_KEY) == META_VALUE
True
>>> db.close()
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import rocksdict

from bucketcore.errors import CorruptState, StoreClosed, StoreError

from .records import META_KEY, META_VALUE

__all__ = ["mapped", "open_db", "rocksdb_options", "store_error"]


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


def rocksdb_options() -> rocksdict.Options:
    """The options every bucketcore RocksDB is opened with."""
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


def open_db(path: str) -> rocksdict.Rdict:
    """Open (or create) the store at ``path``; ``CorruptState`` if it is not ours."""
    with mapped("open", path):
        db = rocksdict.Rdict(path, rocksdb_options())
    try:
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
    except BaseException:
        db.close()
        raise
    return db
