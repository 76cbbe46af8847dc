"""``rocksdb:///path``: the in-memory core, made durable on one node.

The ``MemoryStore`` stays the authority: every decision is made in memory,
under its lock, and its new state goes to RocksDB (``rocksdict``, raw mode)
as the durability mode says. A restarted process reads a bucket back the
first time it is used. ``rocksdb:///var/lib/app/limits`` is an absolute path;
``rocksdb://./data/limits`` is relative to the working directory.

The rooms: ``records.py`` (the record layout), ``database.py`` (opening,
error mapping), ``ownership.py`` (the owner lock), ``persistence.py`` (one
class per durability mode), ``group_commit.py`` (sync's batching),
``store.py`` (``RocksDBStore``, ``open_store``). docs/design.md §8 and §9.

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

Records are fixed little-endian ``struct``s (see ``records.py``) keyed by
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

from bucketcore.errors import ConfigurationError

try:
    import filelock  # noqa: F401
    import rocksdict  # noqa: F401
except ImportError as exc:
    raise ConfigurationError(
        f"rocksdb:// needs an optional dependency: pip install 'bucketcore[rocksdb]' ({exc})"
    ) from exc

from .persistence import DURABILITIES as _MODES
from .store import RocksDBStore, open_store

__all__ = ["DURABILITIES", "RocksDBStore", "open_store"]

DURABILITIES = tuple(_MODES)
