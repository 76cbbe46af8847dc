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

Limits change (docs/design.md §3): ``converted`` re-expresses a state kept
under one limit (its ``Signature``) in another's units; the tokens held carry
over, capped at the new burst, rounded towards fewer. A bucket ``drained``
for longer than one token's refill is further ahead than an empty one; its
``Held`` deadline keeps ``clamped`` from undoing that, and a clock step back
never stretches the hold beyond the length that was asked.

This module is the reference (docs/design.md §7). The copies that exist for
speed or place, and the tests that hold each equal to it:

- ``PythonPath.try_acquire`` / ``acquire`` (bucketcore/_python_path.py): the
  one-limit step inlined on memory://'s Python hot path (tests/test_hot_path.py: a table at fixed
  instants; tests/test_model.py, tests/test_fastpath.py).
- ``PythonPath.persisted_try_acquire``: the same step for a store with a
  persistence (rocksdb://) (tests/test_fastpath.py: C and pure-Python
  RocksDB stores, records included; tests/test_rocksdb.py).
- ``bucketcore/_fastpath.c``: the same calls in C, for up to eight limits
  (tests/test_fastpath.py: C and Python stores call by call, state by state).
  For rocksdb wal it also writes the record of backends/rocksdb/records.py
  (tests/test_fastpath.py: ``test_c_writes_the_record_records_encode_writes``).
- ``MemoryStore`` meets a bucket whose limit is not the call's (another
  object, another rate, or ``Held``) in ``_buckets.adopt``, which calls ``converted``
  and ``clamped`` here; the inlined and C paths only take buckets already
  under the call's very limit (tests/test_limit_changes.py).
- ``LMDBStore._one`` (backends/lmdb/store.py): the one-limit step inlined
  in one LMDB transaction (tests/test_lmdb_hot_path.py: call by call and
  record by record against the store's general path).
- ``backends/lua/gcra.lua``: the step inside Redis, on the server's clock
  (tests/test_redis.py: ``test_the_script_decides_exactly_like_the_reference``),
  with ``clamped``'s hold and ``drained`` in microseconds (tests/test_redis.py:
  ``test_a_drain_survives_a_clock_step_back_no_longer_than_asked``, the
  contract tests). It never converts: a bucket kept under another limit is
  sent back, converted by ``backends/redis/script.py`` with ``converted``
  here, and stored by compare-and-set (tests/test_redis.py:
  ``test_a_changed_plan_is_converted_once_then_decided_in_one_round_trip``).
- ``backends/lmdb/records.py`` ``state_from_record`` calls ``converted``
  on the stored signature and hold (tests/test_lmdb.py, the contract tests).
- ``backends/rocksdb/records.py`` ``state_under`` does the same for
  RocksDB records and pending states (tests/test_rocksdb.py: a limit
  changed between runs, a drain across a restart).

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
from bucketcore.limit import Limit, Signature

__all__ = [
    "MAX_DRAIN_NS",
    "NEVER",
    "Held",
    "Step",
    "as_stored",
    "clamped",
    "converted",
    "decision_from_steps",
    "drained",
    "evaluate",
    "is_full",
    "refunded",
]

NEVER = -1
"""``Step.retry_ns`` when the cost exceeds the burst: no wait is long enough."""

MAX_DRAIN_NS = 365 * 86_400 * 1_000_000_000
"""The longest ``drain``: a year."""


class Held(NamedTuple):
    """A drained bucket's limit and hold: no whole token before ``until_ns``.

    ``for_ns`` is the length the drain asked for: after a clock step back the
    deadline is never more than that ahead (``deadline``).

    >>> Held(Limit(1, 1.0), until_ns=50, for_ns=10).deadline(now_ns=0)
    10
    """

    limit: Limit
    until_ns: int
    for_ns: int

    def deadline(self, now_ns: int) -> int:
        """``until_ns``, or ``for_ns`` from ``now_ns`` if that is sooner."""
        return min(self.until_ns, now_ns + self.for_ns)


class Step(NamedTuple):
    """What one limit says about one call at one instant."""

    allowed: bool
    tat: int  # the state to store when the whole call is allowed
    remaining: int  # whole tokens left (after the call if allowed, else now)
    retry_ns: int  # 0 when allowed, NEVER when cost > burst
    reset_ns: int  # until full, after the call if allowed, else from now


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def evaluate(
    limit: Limit, tat: int | None, now_ns: int, cost: int, held_until_ns: int | None = None
) -> Step:
    """Decide ``cost`` tokens against a bucket whose state is ``tat``.

    ``tat`` is ``None`` for a bucket that is not stored (a full one);
    ``held_until_ns`` is a drained bucket's ``Held.deadline``.

    >>> evaluate(Limit(1, 10.0), 0, now_ns=0, cost=1).allowed
    True
    """
    units = limit.units_per_ns
    now = now_ns * units
    capacity = limit.capacity_units
    start = clamped(limit, tat, now, held_until_ns)
    after = start + cost * limit.token_units
    debt = after - now
    if debt <= capacity:
        return Step(True, after, (capacity - debt) // limit.token_units, 0, _ceil_div(debt, units))
    debt_now = start - now
    retry = NEVER if cost * limit.token_units > capacity else _ceil_div(debt - capacity, units)
    remaining = max(0, (capacity - debt_now) // limit.token_units)  # below 0 when drained
    return Step(False, start, remaining, retry, _ceil_div(debt_now, units))


def clamped(limit: Limit, tat: int | None, now: int, held_until_ns: int | None = None) -> int:
    """``max(tat, now)``, and never more than an empty bucket ahead of ``now``.

    A bucket further ahead than ``capacity`` is either drained (its hold,
    ``held_until_ns``, lets it be as far ahead as a bucket whose first token
    comes back at that deadline) or saw the clock step back since it was
    written: it then counts as empty (no tokens, and no wait longer than an
    empty bucket's), never as fuller. ``now`` is in units.

    >>> clamped(Limit(1, 1.0), 5 * 10**9, now=0)
    1000000000
    >>> clamped(Limit(1, 1.0), 5 * 10**9, now=0, held_until_ns=3 * 10**9)
    3000000000
    """
    if tat is None or tat < now:
        return now
    ceiling = now + limit.capacity_units
    if held_until_ns is not None:
        held = held_until_ns * limit.units_per_ns + limit.capacity_units - limit.token_units
        if held > ceiling:
            ceiling = held
    return ceiling if tat > ceiling else tat


def drained(limit: Limit, tat: int | None, now_ns: int, until_ns: int) -> int:
    """The state of a bucket drained until ``until_ns``: never fuller than ``tat``.

    No whole token before ``until_ns``, one at it (what a server's
    ``Retry-After`` means), then refill at the limit's rate: the state is
    ``until + capacity - token_units``, unless the bucket was emptier
    already. ``tat`` is the state as clamped now. A drain longer than one
    token's refill leaves the bucket beyond an empty one: keep it as ``Held``.

    >>> drained(Limit(1, 1.0), None, now_ns=0, until_ns=5 * 10**9)
    5000000000
    """
    now = now_ns * limit.units_per_ns
    start = now if tat is None or tat < now else tat
    held = until_ns * limit.units_per_ns + limit.capacity_units - limit.token_units
    return held if held > start else start


def converted(
    old: Signature, new: Signature, tat: int | None, now_ns: int, held_until_ns: int | None = None
) -> int | None:
    """A state kept under ``old`` re-expressed under ``new`` at ``now_ns``; None: full.

    The tokens held now carry over, capped at the new burst, rounded
    towards fewer, and refill at the new rate (Bucket4j's "as is",
    x/time/rate's ``SetLimit``). A full bucket stays full (full ones are not
    kept). A drained bucket (beyond empty, with ``held_until_ns``) keeps the
    instant its first whole token comes back, rounded later: the hold is a
    time, not a number of tokens. Equal signatures: ``clamped`` only.

    >>> old = Limit(10, 1.0).signature         # a token per 100 ms
    >>> tat = 600_000_000                      # 4 of 10 tokens held at 0
    >>> converted(old, Limit(2, 1.0).signature, tat, now_ns=0)   # 2 held: full
    >>> converted(old, Limit(100, 1.0).signature, tat, now_ns=0) # 4 of 100
    960000000
    """
    units, token_units, burst = old
    if tat is None:
        return None
    capacity = burst * token_units
    now = now_ns * units
    if tat <= now:
        return None
    ceiling = now + capacity
    if held_until_ns is not None:
        ceiling = max(ceiling, held_until_ns * units + capacity - token_units)
    tat = min(tat, ceiling)
    if old == new:
        return tat
    new_units, new_token_units, new_burst = new
    new_capacity = new_burst * new_token_units
    new_now = now_ns * new_units
    if tat - now > capacity:  # held: the first token's instant carries over
        first_ns = _ceil_div(tat - capacity + token_units, units)
        return max(new_now, first_ns * new_units + new_capacity - new_token_units)
    held_units = (capacity - (tat - now)) * new_token_units // token_units
    debt = new_capacity - held_units
    return None if debt <= 0 else new_now + debt  # debt <= 0: capped at the new burst


def as_stored(limit: Limit, tat: int, now_ns: int) -> int | None:
    """A ``held_until_ns`` under which a state its store clamped already stays as it is.

    Redis replies a bucket's debt after its own clamp (with its hold): a
    debt beyond an empty bucket's is a hold, whose deadline this recovers.

    >>> as_stored(Limit(1, 1.0), 3 * 10**9, now_ns=0)
    3000000000
    """
    beyond = tat - now_ns * limit.units_per_ns - limit.capacity_units
    if beyond <= 0:
        return None
    return now_ns + _ceil_div(beyond + limit.token_units, limit.units_per_ns)


def refunded(
    limit: Limit, tat: int | None, now_ns: int, tokens: int, held_until_ns: int | None = None
) -> int | None:
    """The state after giving ``tokens`` back, or ``None`` when that fills it.

    >>> refunded(Limit(2, 1.0), 1_000_000_000, now_ns=0, tokens=1)
    500000000
    """
    now = now_ns * limit.units_per_ns
    if tat is None:
        return None
    tat = clamped(limit, tat, now, held_until_ns) - tokens * limit.token_units
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
