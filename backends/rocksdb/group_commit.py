"""rocksdb ``sync``: callers share fsyncs, one leader per batch, no syncer thread.

Each caller enlists under the store lock (its state already pending), then,
with the lock released, waits or leads: the caller that brings the batch to
the expected size takes every pending state, writes them in one batch,
fsyncs once (the GIL released) and wakes the batch in a chain. The first
caller of a batch gathers: if the batch has not filled in about two fsyncs'
time, it leads a smaller one. Why this shape, and what was measured:
docs/design.md §8 "memory:// and rocksdb://".

>>> import threading
>>> written = []
>>> lock, flush_lock = threading.Lock(), threading.Lock()
>>> def write(pending, now_ns): written.append(pending)
>>> group = GroupCommit(lock, flush_lock, lambda: ({"k": 1}, 0), write, "db")
>>> with group.lock:
...     group.enlist()
>>> group.await_fsync(), written
(None, [{'k': 1}])
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from bucketcore.errors import StoreError

__all__ = ["GroupCommit", "Waiter"]

log = logging.getLogger("bucketcore.rocksdb")

# The gatherer waits up to GATHER_FSYNCS times the recent write + fsync time,
# never more than GATHER_MAX_S: a straggler left out costs one more fsync
# (docs/design.md §8 has the measurements behind these two numbers).
GATHER_FSYNCS = 2
GATHER_MAX_S = 0.001


class Waiter:
    """One caller waiting for an fsync; it sleeps on ``lock`` until woken.

    It is woken once: answered (``error`` is its batch's outcome; it then
    wakes ``next``, the next caller of its batch), or told to lead (write
    and fsync the batch itself). Its fields are written under the store
    lock, before the wake that makes them visible.

    >>> first, second = Waiter(), Waiter()
    >>> first.next = second
    >>> first.wake()
    >>> first.lock.acquire(timeout=0), second.lock.acquire(timeout=0)
    (True, False)
    """

    __slots__ = (
        "abandoned",
        "error",
        "gathers",
        "leads",
        "lock",
        "next",
        "overdue",
        "taken",
        "woken",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lock.acquire()
        self.error: StoreError | None = None
        self.next: Waiter | None = None
        self.leads = False  # it writes and fsyncs its batch
        self.gathers = False  # it waits a little for its batch to fill, then leads
        self.overdue = False  # it stopped gathering while another batch was in flight
        self.taken = False  # a leader took its batch: the answer is on its way
        self.abandoned = False  # interrupted after that: the chain of wake-ups skips it
        self.woken = False

    def lead(self) -> None:
        self.leads = True
        self.wake()

    def wake(self) -> None:
        if not self.woken:
            self.woken = True
            self.lock.release()


class GroupCommit:
    """The batching of one store. ``lock`` is the store lock (the memory core's).

    ``take_pending()`` (called with ``lock`` held) returns the pending states
    and the instant they are as of; ``write_pending(pending, now_ns)`` writes
    and fsyncs them with the lock released, raising ``StoreError``. Both are
    called under ``flush_lock``, which a plain flush holds too.
    """

    def __init__(
        self,
        lock: Any,
        flush_lock: Any,
        take_pending: Callable[[], tuple[Any, int]],
        write_pending: Callable[[Any, int], None],
        path: str,
    ) -> None:
        self._path = path
        self.lock = lock
        self.flush_lock = flush_lock
        self._take_pending = take_pending
        self._write_pending = write_pending
        # All under the store lock: the callers waiting for the next fsync,
        # how many are expected, the one gathering them, and whether a
        # leader is writing and fsyncing a batch.
        self.batch: list[Waiter] = []
        self.want = 1
        self._gather_s = GATHER_MAX_S / 4  # until fsyncs are timed
        self._gatherer: Waiter | None = None
        self._syncing = False
        self._waiting = threading.local()  # the calling thread's Waiter

    def enlist(self) -> None:
        """Queue the calling thread for the next fsync (the store lock is held)."""
        waiter = self._waiting.waiter = Waiter()
        self.batch.append(waiter)

    def await_fsync(self) -> None:
        """Return once this thread's state is fsynced, leading the batch if it falls to it.

        Raises the batch's ``StoreError`` if the write or fsync failed.
        """
        waiter: Waiter = self._waiting.waiter
        with self.lock:
            if not waiter.taken:
                if not self._syncing and len(self.batch) >= self.want:
                    self._syncing = waiter.leads = True
                elif self._gatherer is None:
                    self._gatherer = waiter
                    waiter.gathers = True
        timeout = self._gather_s if waiter.gathers else -1
        try:
            if not waiter.leads and not waiter.lock.acquire(timeout=timeout):
                self._stop_gathering(waiter)
                if not waiter.leads:
                    waiter.lock.acquire()
        except BaseException:  # a KeyboardInterrupt, say: the others must not wait for it
            self._abandon(waiter)
            raise
        if waiter.next is not None:
            with self.lock:
                self._wake_chain(waiter.next)
        if waiter.leads:
            self._lead()
        if waiter.error is not None:
            raise waiter.error

    def _stop_gathering(self, waiter: Waiter) -> None:
        """The gatherer's wait timed out: lead a smaller batch, or be next."""
        with self.lock:
            if waiter.taken or waiter.leads:
                return  # woken just now: its lock is released
            if self._syncing:
                waiter.overdue = True  # the leader in flight hands over when done
            else:
                self._syncing = waiter.leads = True

    def _lead(self) -> None:
        """Write and fsync every pending state, then answer the batch waiting for it."""
        batch: list[Waiter] = []
        error: StoreError | None = None
        took_ns = 0
        try:
            # Every state of this batch is pending by now, or was written by
            # a flush that holds the flush lock until it is fsynced.
            with self.flush_lock:
                with self.lock:
                    batch, self.batch = self.batch, []
                    self._gatherer = None
                    for waiter in batch:
                        waiter.taken = True
                    pending, now_ns = self._take_pending()
                if pending:
                    started = time.perf_counter_ns()
                    self._write_pending(pending, now_ns)
                    took_ns = time.perf_counter_ns() - started
        except StoreError as exc:
            error = exc
            log.error("%s", error)
        except BaseException:
            error = StoreError(f"RocksDB store {self._path}: the fsync was interrupted")
            raise
        finally:
            with self.lock:
                self._answer(batch, error)
                self._syncing = False
                if took_ns:  # a moving average: one slow fsync does not decide
                    gather_s = self._gather_s * 7 / 8 + GATHER_FSYNCS * took_ns / 8e9
                    self._gather_s = min(gather_s, GATHER_MAX_S)
                self._hand_over(len(batch))

    def _answer(self, batch: list[Waiter], error: StoreError | None) -> None:
        """Tell ``batch`` its outcome and wake the first; each wakes the next (lock held)."""
        first = None
        for waiter in reversed(batch):
            waiter.taken = True
            waiter.error = error
            if not waiter.leads:  # the leader is awake already
                waiter.next = first
                first = waiter
        if first is not None:
            self._wake_chain(first)

    @staticmethod
    def _wake_chain(waiter: Waiter | None) -> None:
        """Wake ``waiter``, or the first after it still there (the store lock is held)."""
        while waiter is not None and waiter.abandoned:
            waiter = waiter.next
        if waiter is not None:
            waiter.wake()

    def _hand_over(self, answered: int) -> None:
        """After a batch: pass the lead to the next one if it is due (the lock is held).

        Those just answered usually come straight back: the next batch
        expects them, and leads when it has them, or when its gatherer gave up.
        """
        want, self.want = self.want, answered + len(self.batch)
        gatherer = self._gatherer
        if gatherer is not None and (gatherer.overdue or len(self.batch) >= want):
            self._syncing = True
            gatherer.lead()

    def _abandon(self, waiter: Waiter) -> None:
        """An interrupted waiter leaves: its state stays pending, nobody waits for it."""
        with self.lock:
            if waiter.taken:
                waiter.abandoned = True  # the chain of wake-ups goes round it
                self._wake_chain(waiter.next)
                return
            if waiter not in self.batch:
                return
            self.batch.remove(waiter)
            if waiter.leads:
                self._syncing = False
            if self._gatherer is waiter:
                self._gatherer = None
            if self.batch and self._gatherer is None:
                # Nobody would time out for the rest: the first of them leads
                # now, or right after the batch in flight.
                first = self._gatherer = self.batch[0]
                first.gathers = first.overdue = True
                if not self._syncing:
                    self._syncing = True
                    first.lead()

    def stop(self, error: StoreError | None) -> None:
        """Answer everyone still waiting, at close (the store lock is held).

        Called after the final flush: what is queued is now fsynced, or
        failed with ``error``.
        """
        self._answer(self.batch, error)
        self.batch = []
        self._gatherer = None
