"""The persistence contract: what a ``MemoryStore`` tells a durable backend.

``MemoryStore(persistence=None)`` is memory://; rocksdb:// hands it one
persistence object per durability mode (``backends/rocksdb/persistence.py``).
The memory core stays the authority: it decides under its lock and tells the
persistence what changed (docs/design.md §8).

>>> class Forgetful:
...     blocking = False
...     def load(self, bucket_id, limit, now_ns): return Loaded(None, None)
...     def stage(self, changes, now_ns): pass
...     def settle(self): pass
...     def forget(self, bucket_ids): pass
>>> isinstance(Forgetful(), Persistence)
True
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

from bucketcore._gcra import Held
from bucketcore._keys import Key
from bucketcore.limit import Limit

__all__ = ["BucketId", "Change", "Loaded", "Persistence"]

BucketId = tuple[str, Key]  # (limit.identity, canonical key)
# A bucket's new tat (None: it is full) and what memory keeps it under: its
# Limit, or a drain's Held while the bucket is held beyond empty.
Change = tuple[BucketId, Limit | Held, int | None]


class Loaded(NamedTuple):
    """A stored bucket read under the caller's limit: converted and clamped."""

    tat: int | None  # None: full
    held: Held | None  # a drain still holding it beyond empty


@runtime_checkable
class Persistence(Protocol):
    """Where a memory core's new states go. ``load``/``stage``/``forget`` run under its lock.

    ``blocking`` is true when ``settle`` waits for I/O (an fsync):
    ``AsyncLimiter`` then runs changing calls in a worker thread.
    """

    blocking: bool

    def load(self, bucket_id: BucketId, limit: Limit, now_ns: int) -> Loaded:
        """The stored state of a bucket missing from memory, under ``limit`` at ``now_ns``."""

    def stage(self, changes: list[Change], now_ns: int) -> None:
        """Record new states before the call answers; raise to refuse them."""

    def settle(self) -> None:
        """After the lock is released, before a changing call returns (e.g. wait for an fsync)."""

    def forget(self, bucket_ids: list[BucketId]) -> None:
        """The memory sweep dropped these full buckets: their records may go."""
