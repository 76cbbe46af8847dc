"""The memory core's lazy sweep: full buckets dropped a few at a time, no thread.

Full buckets carry no information. Each sweep walks a snapshot of one table
at a time until it has passed ``live`` live buckets, so the creations that
call it pay for the full buckets they meet, and a new snapshot is taken where
the walk ends. Every bucket is looked at within about ``n / 2`` creations:
amortised O(1), and never more than ``most`` entries a call (no call stalls).

>>> from bucketcore.limit import Limit
>>> limit = Limit(1, 1.0)
>>> tables = {limit.identity: {"gone": [0, limit], "kept": [10**12, limit]}}
>>> Sweep(live=4).sweep(tables, now_ns=1) == [(limit.identity, "gone")]
True
>>> list(tables[limit.identity])
['kept']
"""

from __future__ import annotations

from typing import Any

from bucketcore._keys import Key
from bucketcore.persistence import BucketId

__all__ = ["Sweep"]

Table = dict[Key, list[Any]]  # {key: [tat, limit]}, as in bucketcore/memory.py


class Sweep:
    """Where the walk is: the identities left, the table and its keys, the position."""

    def __init__(self, *, live: int, most: int = 8192) -> None:
        self.live = live
        self.most = most
        self._identities: list[str] = []
        self._identity = ""
        self._table: Table = {}
        self._keys: list[Key] = []
        self._next = 0

    def sweep(self, tables: dict[str, Table], now_ns: int) -> list[BucketId]:
        """Drop full buckets from ``tables``; the ones dropped, for a persistence."""
        live = 0
        budget = self.most
        snapshots_left = len(tables)  # each table at most once per call
        dropped: list[BucketId] = []
        while live < self.live and budget > 0:
            keys = self._keys
            position = self._next
            if position >= len(keys):
                if snapshots_left <= 0:
                    break
                snapshots_left -= 1
                self._next_table(tables)
                continue
            table = self._table
            end = min(len(keys), position + budget)
            start = position
            while position < end and live < self.live:
                key = keys[position]
                position += 1
                bucket = table.get(key)
                if bucket is None:
                    continue
                if bucket[0] <= now_ns * bucket[1].units_per_ns:
                    del table[key]
                    dropped.append((self._identity, key))
                else:
                    live += 1
            budget -= position - start
            self._next = position
        return dropped

    def _next_table(self, tables: dict[str, Table]) -> None:
        if not self._identities:
            self._identities = list(tables)
            if not self._identities:
                return
        identity = self._identity = self._identities.pop()
        table = tables.get(identity)
        if table is not None and not table:
            del tables[identity]  # a limit nobody uses any more
            table = None
        self._table = table if table is not None else {}
        self._keys = list(self._table)
        self._next = 0
