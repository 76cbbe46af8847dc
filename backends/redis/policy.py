"""Answers given without Redis: the deny cache, and the failure policy.

``DenyCache``: after a denial, repeat calls for that bucket set are decided
locally from the debts Redis reported, for as long as those debts still
deny them (exact fields, elapsed time counted from before the denial was
asked), so an abusive client costs no round trip. A ``refund`` or ``reset``
through this store clears it; one from another process is seen here only
once the cached denial has run out (tokens can otherwise only appear with
time).

``FailurePolicy``: what a call answers when Redis is unavailable
(``on_error=raise|allow|deny``); it logs once when an outage begins and
once when it ends.
"""

from __future__ import annotations

import logging
import threading
import time

from bucketcore._gcra import NEVER, decision_from_steps, evaluate
from bucketcore.decision import Decision, from_nanoseconds, make_decision
from bucketcore.errors import StoreUnavailable
from bucketcore.limit import Limit

from .script import Plan

__all__ = ["DenyCache", "FailurePolicy"]

_LOG = logging.getLogger("bucketcore.redis")


class DenyCache:
    """Denials Redis gave, by escaped key and limit identities, to answer again locally.

    >>> cache, limit = DenyCache(100), Limit(1, 1.0)
    >>> cache.remember(b"k", (limit,), [Plan(limit)], [0, 0, 500_000, 0], started=0)
    >>> round(cache.answer(b"k", (limit,), 1, now_ns=0).retry_after, 3)  # 0.5 s in debt
    0.5
    >>> cache.answer(b"k", (limit,), 1, now_ns=2_000_000_000) is None  # paid off: ask Redis
    True
    """

    __slots__ = ("entries", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        # escaped key -> identities -> (local ns before the call, debts)
        self.entries: dict[bytes, dict[tuple[str, ...], tuple[int, list[int]]]] = {}

    def remember(
        self,
        tag: bytes,
        limits: tuple[Limit, ...],
        plans: list[Plan],
        reply: list[int],
        started: int,
    ) -> None:
        """Keep the debts of a denial Redis decided for a call sent at ``started``."""
        debts = [reply[2 + 2 * i] * plan.w + reply[3 + 2 * i] for i, plan in enumerate(plans)]
        if len(self.entries) >= self.size:
            self.entries.clear()  # a cache: forgetting only costs round trips
        self.entries.setdefault(tag, {})[tuple(limit.identity for limit in limits)] = (
            started,
            debts,
        )

    def answer(
        self, tag: bytes, limits: tuple[Limit, ...], cost: int, now_ns: int
    ) -> Decision | None:
        """The denial to answer locally, or None to ask Redis.

        The debts were measured by the server after ``started`` (taken before
        the call was sent), so counting elapsed time from ``started`` never
        holds a bucket back longer than Redis would.
        """
        by_key = self.entries.get(tag)
        if not by_key:
            return None
        ids = tuple(limit.identity for limit in limits)
        entry = by_key.get(ids)
        if entry is None:
            return None
        started, debts = entry
        elapsed = now_ns - started
        steps = [
            evaluate(limit, debt, elapsed, cost) for limit, debt in zip(limits, debts, strict=True)
        ]
        if all(step.allowed for step in steps):
            by_key.pop(ids, None)
            return None
        return decision_from_steps(limits, steps)

    def forget(self, tag: bytes) -> None:
        """Tokens came back for this key (a refund or reset): ask Redis again."""
        self.entries.pop(tag, None)


class FailurePolicy:
    """``on_error``: raise, or decide every call alike while Redis is unavailable.

    >>> policy = FailurePolicy("deny")
    >>> decision = policy.degraded((Limit(1, 2.0),), 1, StoreUnavailable("down"))
    >>> decision.allowed, round(decision.retry_after, 3), decision.degraded, policy.outage
    (False, 2.0, True, True)
    """

    __slots__ = ("_lock", "_since", "on_error", "outage")

    def __init__(self, on_error: str) -> None:
        self.on_error = on_error
        self.outage = False
        self._since = 0
        self._lock = threading.Lock()

    def degraded(self, limits: tuple[Limit, ...], cost: int, exc: StoreUnavailable) -> Decision:
        """The answer while Redis is unavailable (or ``exc`` raised, under ``raise``)."""
        if self.on_error == "raise":
            raise exc
        if not self.outage:
            with self._lock:
                if not self.outage:
                    self.outage = True
                    self._since = time.monotonic_ns()
                    _LOG.warning(
                        "Redis is unavailable (%s): on_error=%s decides until it is back",
                        exc,
                        self.on_error,
                    )
        limit = limits[0]
        if self.on_error == "allow":
            return make_decision(True, 0, 0.0, 0.0, limit, degraded=True)
        # Fail closed: say how long the slowest limit would need for the cost.
        waits = [
            NEVER
            if cost * lim.token_units > lim.capacity_units
            else -(-cost * lim.token_units // lim.units_per_ns)
            for lim in limits
        ]
        index = max(range(len(limits)), key=lambda i: (waits[i] == NEVER, waits[i]))
        limit = limits[index]
        full_ns = -(-limit.capacity_units // limit.units_per_ns)
        decision = from_nanoseconds(False, 0, waits[index], full_ns, limit)
        return make_decision(
            False, 0, decision.retry_after, decision.reset_after, limit, degraded=True
        )

    def recovered(self, started: int) -> None:
        """A call that began at ``started`` (monotonic ns) succeeded.

        Only a call begun after the outage was noticed ends it: one that was
        already in flight may still answer, and must not make it log twice.
        """
        with self._lock:
            if self.outage and started > self._since:
                self.outage = False
                _LOG.warning("Redis is reachable again: decisions are exact again")
