"""The lazy sweep of full bucket records, inside the transactions that decide.

Full buckets carry no information, so their records are deleted to keep the
file bounded, without a thread: each write adds 1 and each new record
``CREATED`` to ``Sweep.count``; at ``DUE`` the next ``BATCH`` records after
the cursor are examined (in the same transaction) and the full ones
deleted. Two records examined per record created outpace creation, so the
file stays within a small factor of the live buckets; without new records a
quarter of a record is examined per write, so a burst of one-off keys is
swept by later traffic on any key. Amortised: well under a tenth of a
microsecond a decision.

>>> sweep = Sweep()
>>> sweep.count += CREATED
>>> sweep.count >= DUE
False
"""

from __future__ import annotations

import lmdb

from .records import BUCKETS_END, is_full_record

__all__ = ["BATCH", "CREATED", "DUE", "Sweep"]

DUE = 256
CREATED = 8
BATCH = 64
_FIRST = b"\x01"  # where bucket records begin


class Sweep:
    """One store's sweep: the count towards the next, and where it left off."""

    __slots__ = ("_cursor", "count")

    def __init__(self) -> None:
        self.count = 0
        self._cursor = _FIRST

    def run(self, txn: lmdb.Transaction, now_ns: int) -> bool:
        """Delete the full records among the next ``BATCH``; True if any was."""
        self.count = 0
        deleted = False
        with txn.cursor() as cursor:
            cursor.set_range(self._cursor)
            for _ in range(BATCH):
                record_key = bytes(cursor.key())
                if not record_key or record_key >= BUCKETS_END:
                    self._cursor = _FIRST  # start over next time
                    return deleted
                if is_full_record(cursor.value(), now_ns):
                    cursor.delete()  # and on to the next
                    deleted = True
                else:
                    cursor.next()
            self._cursor = bytes(cursor.key()) or _FIRST
        return deleted
