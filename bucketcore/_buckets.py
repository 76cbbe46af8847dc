"""A memory:// bucket kept under another limit, or held by a drain: what it becomes.

A bucket is ``[tat, owner]``: its state and what the state is kept under,
the call's ``Limit`` or a drain's ``_gcra.Held``. The hot paths (Python and
C) take only buckets already under the call's very limit; ``rebind`` lets C
take an equal one, and everything else goes through ``adopt``, which
converts the state (``_gcra.converted``, docs/design.md §3).

>>> from bucketcore import Limit
>>> bucket = [0, Limit(10, 1.0, name="plan")]
>>> rebind(bucket, Limit(20, 1.0, name="plan"))  # a changed plan: Python converts it
False
"""

from __future__ import annotations

from typing import Any

from bucketcore._gcra import Held, converted, evaluate
from bucketcore._keys import Key
from bucketcore.decision import Decision, from_nanoseconds
from bucketcore.limit import Limit

__all__ = ["Bucket", "Table", "adopt", "held_decision", "rebind"]

Bucket = list[Any]  # [tat: int, owner: Limit | Held]; a list so the hot path updates in place
Table = dict[Key, Bucket]


def rebind(bucket: Bucket, limit: Limit) -> bool:
    """For the C path: True, and ``bucket[1] = limit``, when the two are alike.

    Anything else (a changed plan, a drain's ``Held``) C hands to Python.
    """
    owner = bucket[1]
    if type(owner) is Limit and owner.signature == limit.signature:
        bucket[1] = limit
        return True
    return False


def adopt(bucket: Bucket, limit: Limit, now_ns: int) -> int | None:
    """Keep ``bucket`` under ``limit`` from now on: its state converted and clamped.

    Called whenever ``bucket[1]`` is not ``limit`` itself: another equal
    object (nothing to convert), a changed plan (``_gcra.converted``), or
    a drain's ``Held``, kept while the bucket is still beyond empty.
    Returns the state (None: full); ``bucket[1]`` is ``limit`` or ``Held``.
    """
    owner = bucket[1]
    now = now_ns * limit.units_per_ns
    if type(owner) is Held:
        held_until_ns: int | None = owner.deadline(now_ns)
        old: Limit = owner.limit
    else:
        held_until_ns, old = None, owner
    tat = converted(old.signature, limit.signature, bucket[0], now_ns, held_until_ns)
    if held_until_ns is not None and tat is not None and tat > now + limit.capacity_units:
        bucket[1] = Held(limit, held_until_ns, owner.for_ns)
    else:
        bucket[1] = limit
    bucket[0] = now if tat is None else tat
    return tat


def held_decision(bucket: Bucket, now_ns: int, cost: int) -> Decision:
    """The refusal of a bucket held by a drain (``adopt`` has clamped it)."""
    held: Held = bucket[1]
    step = evaluate(held.limit, bucket[0], now_ns, cost, held.deadline(now_ns))
    return from_nanoseconds(False, step.remaining, step.retry_ns, step.reset_ns, held.limit)
