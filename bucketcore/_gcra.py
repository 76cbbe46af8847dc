"""The token-bucket arithmetic: pure integer functions of (state, now).

A bucket is kept as a GCRA "theoretical arrival time" ``tat``: the instant at
which the bucket would be full again. Times are integers in *units*:
``limit.units_per_ns`` units make a nanosecond and one token costs
``limit.token_units`` units, so the emission interval ``period_ns / tokens``
is exact however the two divide (both are reduced by their gcd).

Derivation. With ``debt = max(tat, now) - now`` (how far the bucket is below
full), the bucket holds ``(capacity - debt) / token_units`` tokens. Taking
``cost`` tokens is allowed iff ``debt + cost * token_units <= capacity``, and
then ``tat' = max(tat, now) + cost * token_units``. Nothing is ever rounded
into the state, so fractions of a token carry over; time running backwards
only increases the debt, never hands out tokens.

Every function here takes ``now`` (integer nanoseconds) and reads no clock.

This module is the reference (docs/design.md §7). The copies that exist for
speed or place, and the tests that hold each equal to it:

- ``MemoryStore.checked_try_acquire`` / ``checked_acquire``: the one-limit
  step inlined on the hot path (tests/test_hot_path.py: a table at fixed
  instants; tests/test_model.py, tests/test_fastpath.py).
- ``MemoryStore._persisted_try_acquire``: the same step for a store with a
  persistence (rocksdb://) (tests/test_fastpath.py: C and pure-Python
  RocksDB stores, records included; tests/test_rocksdb.py).
- ``bucketcore/_fastpath.c``: the same calls in C, for up to eight limits
  (tests/test_fastpath.py: C and Python stores call by call, state by state).
  For rocksdb wal it also writes the record of backends/rocksdb/records.py
  (tests/test_fastpath.py: ``test_c_writes_the_record_records_encode_writes``).
- ``LMDBStore._one`` (backends/lmdb/store.py): the one-limit step inlined
  in one LMDB transaction (tests/test_lmdb_hot_path.py: call by call and
  record by record against the store's general path).
- ``backends/lua/gcra.lua``: the step inside Redis, on the server's clock
  (tests/test_redis.py: ``test_the_script_decides_exactly_like_the_reference``).

>>> from bucketcore.limit import Limit
>>> limit = Limit(2, 1.0)                      # 2 per second, burst 2
>>> step = evaluate(limit, None, now_ns=0, cost=2)
>>> step.allowed, step.remaining, step.reset_ns
(True, 0, 1000000000)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from bucketcore.decision import Decision, from_nanoseconds
from bucketcore.limit import Limit

__all__ = ["NEVER", "Step", "clamped", "decision_from_steps", "evaluate", "is_full", "refunded"]

NEVER = -1
"""``Step.retry_ns`` when the cost exceeds the burst: no wait is long enough."""


class Step(NamedTuple):
    """What one limit says about one call at one instant."""

    allowed: bool
    tat: int  # the state to store when the whole call is allowed
    remaining: int  # whole tokens left (after the call if allowed, else now)
    retry_ns: int  # 0 when allowed, NEVER when cost > burst
    reset_ns: int  # until full, after the call if allowed, else from now


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def evaluate(limit: Limit, tat: int | None, now_ns: int, cost: int) -> Step:
    """Decide ``cost`` tokens against a bucket whose state is ``tat``.

    ``tat`` is ``None`` for a bucket that is not stored (a full one).

    >>> evaluate(Limit(1, 10.0), 0, now_ns=0, cost=1).allowed
    True
    """
    units = limit.units_per_ns
    now = now_ns * units
    capacity = limit.capacity_units
    start = clamped(limit, tat, now)
    after = start + cost * limit.token_units
    debt = after - now
    if debt <= capacity:
        return Step(True, after, (capacity - debt) // limit.token_units, 0, _ceil_div(debt, units))
    debt_now = start - now
    retry = NEVER if cost * limit.token_units > capacity else _ceil_div(debt - capacity, units)
    return Step(
        False, start, (capacity - debt_now) // limit.token_units, retry, _ceil_div(debt_now, units)
    )


def clamped(limit: Limit, tat: int | None, now: int) -> int:
    """``max(tat, now)``, and never more than an empty bucket ahead of ``now``.

    A bucket can only be further ahead than ``capacity`` if the clock went
    backwards since it was written; it then counts as empty (no tokens, and
    no wait longer than an empty bucket's), never as fuller. ``now`` is in
    units.

    >>> clamped(Limit(1, 1.0), 5 * 10**9, now=0)
    1000000000
    """
    if tat is None or tat < now:
        return now
    ceiling = now + limit.capacity_units
    return ceiling if tat > ceiling else tat


def refunded(limit: Limit, tat: int | None, now_ns: int, tokens: int) -> int | None:
    """The state after giving ``tokens`` back, or ``None`` when that fills it.

    >>> refunded(Limit(2, 1.0), 1_000_000_000, now_ns=0, tokens=1)
    500000000
    """
    now = now_ns * limit.units_per_ns
    if tat is None:
        return None
    tat = clamped(limit, tat, now) - tokens * limit.token_units
    return None if tat <= now else tat


def is_full(limit: Limit, tat: int, now_ns: int) -> bool:
    """True when the bucket has refilled completely (and may be forgotten).

    >>> is_full(Limit(1, 1.0), 5, now_ns=5)
    True
    """
    return tat <= now_ns * limit.units_per_ns


def _binding(steps: Sequence[Step], allowed: bool) -> int:
    """Index of the binding limit: longest wait if denied, fewest tokens if allowed."""
    indices = range(len(steps))
    if allowed:
        return min(indices, key=lambda i: (steps[i].remaining, -steps[i].reset_ns))
    return max(
        indices,
        key=lambda i: (steps[i].retry_ns == NEVER, steps[i].retry_ns, -steps[i].remaining),
    )


def decision_from_steps(limits: Sequence[Limit], steps: Sequence[Step]) -> Decision:
    """Combine per-limit steps into the call's ``Decision`` (all-or-nothing).

    >>> limits = (Limit(1, 1.0), Limit(5, 1.0))
    >>> decision_from_steps(limits, [evaluate(l, None, 0, 1) for l in limits]).limit.tokens
    1
    """
    allowed = all(step.allowed for step in steps)
    index = 0 if len(steps) == 1 else _binding(steps, allowed)
    step = steps[index]
    return from_nanoseconds(allowed, step.remaining, step.retry_ns, step.reset_ns, limits[index])
