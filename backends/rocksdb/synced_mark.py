"""How far the write-ahead log was fsynced, kept beside it (docs/design.md §8).

RocksDB opens a log that simply ends early: that is the shape a power loss
leaves (the tail the OS had not written back), and the recovery mode
database.py chooses accepts it. A log cut short or zeroed *after* an fsync
looks the same to RocksDB, but it drops decisions ``sync`` acknowledged.

So each batch a store fsyncs carries a count (the record ``SYNCED_KEY``,
one more each batch), and once the fsync returns the count is written to
``<path>/BUCKETCORE-SYNCED``. At open, a database whose log brought back a
smaller count than the file holds has lost fsynced writes. (RocksDB's own
sequence number cannot serve: with in-place memtable updates, which
database.py turns on, it is not restored by a reopen.)

The file is written with one ``pwrite`` and no fsync of its own: it is
written after the log's fsync, so it never runs ahead of what the log holds
durably; a power loss can only leave an older (lower) count, which weakens
the check for that one open but never raises a false alarm.

>>> import tempfile
>>> mark = SyncedMark(tempfile.mkdtemp())
>>> mark.read() is None
True
>>> mark.write(42); mark.read()
42
>>> mark.close()
"""

from __future__ import annotations

import os
import struct

import rocksdict

from bucketcore.errors import CorruptState

__all__ = ["MARK_FILE", "SYNCED_KEY", "SyncedMark"]

MARK_FILE = "BUCKETCORE-SYNCED"  # RocksDB leaves names it does not know alone
SYNCED_KEY = b"\x00bucketcore-synced"  # the count, in the log (tag 0: not a bucket)
_COUNT = struct.Struct("<Q")
_MARK = struct.Struct("<8sQ")  # magic, the count the last fsync covered
_MAGIC = b"bcsynced"


class SyncedMark:
    """The count of fsynced batches: in the log, and in the mark file once fsynced."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, MARK_FILE)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.count = 0  # the last count put in a batch

    def read(self) -> int | None:
        """The count last marked fsynced; None for a store never marked."""
        data = os.pread(self._fd, _MARK.size, 0)
        if not data:
            return None
        if len(data) != _MARK.size or data[:8] != _MAGIC:
            raise CorruptState(
                f"{self.path} is not a bucketcore fsync mark ({data!r}); it records how far "
                "the write-ahead log was fsynced: restore it, or delete it to skip the check once"
            )
        count: int = _MARK.unpack(data)[1]
        return count

    def recovered(self, db: rocksdict.Rdict) -> int:
        """The count the database holds after recovery (0: none yet); counting goes on from it."""
        value = db.get(SYNCED_KEY)
        self.count = _COUNT.unpack(value)[0] if value is not None and len(value) == 8 else 0
        return self.count

    def stamp(self, batch: rocksdict.WriteBatch) -> int:
        """Put the next count in ``batch`` (which the caller fsyncs); that count."""
        self.count += 1
        batch.put(SYNCED_KEY, _COUNT.pack(self.count))
        return self.count

    def write(self, count: int) -> None:
        """Mark ``count`` fsynced (call only after the log's fsync returned)."""
        os.pwrite(self._fd, _MARK.pack(_MAGIC, count), 0)

    def close(self) -> None:
        os.close(self._fd)
