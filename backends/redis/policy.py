"""Answers given without Redis: the deny cache, and the failure policy.

``DenyCache``: after a denial, repeat calls for that bucket set are decided
locally from the debts Redis reported, for as long as those debts still
deny them (exact fields, elapsed time counted from before the denial was
asked), so an abusive client costs no round trip. A ``refund`` or ``reset``
through this store clears it; one from another process is seen here only
once the cached denial has run out (tokens can otherwise only appear with
time).

``FailurePolicy``: what a call answers when Redis is unavailable
(``on_error=raise|allow|deny|local``), and what becomes of a refund or a
reset meanwhile. The outage's log lines are the circuit breaker's
(``breaker``), and one more if refunds or resets are dropped.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

from bucketcore._gcra import NEVER, as_stored, decision_from_steps, evaluate
from bucketcore._keys import Key
from bucketcore.decision import Decision, from_nanoseconds, make_decision
from bucketcore.errors import BucketError, StoreUnavailable
from bucketcore.limit import Limit
from bucketcore.memory import MemoryStore

from .breaker import Breaker
from .options import Settings
from .script import Plan

__all__ = ["DenyCache", "FailurePolicy", "breaker_for"]

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
        # escaped key -> identities -> (local ns before the call, debts, the limits)
        self.entries: dict[
            bytes, dict[tuple[str, ...], tuple[int, list[int], tuple[Limit, ...]]]
        ] = {}

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
            limits,
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
        started, debts, known = entry
        if known != limits:  # a plan changed: its debts are in other units
            return None
        elapsed = now_ns - started
        steps = [
            evaluate(limit, debt, elapsed, cost, as_stored(limit, debt, 0))
            for limit, debt in zip(limits, debts, strict=True)
        ]
        if all(step.allowed for step in steps):
            by_key.pop(ids, None)
            return None
        return decision_from_steps(limits, steps)

    def forget(self, tag: bytes) -> None:
        """Tokens came back for this key (a refund or reset): ask Redis again."""
        self.entries.pop(tag, None)


class FailurePolicy:
    """``on_error``: raise, or decide the calls made while Redis is unavailable.

    ``allow`` and ``deny`` answer every call alike; ``local`` decides in an
    in-process ``MemoryStore`` with the same limits, made at the first
    failure and dropped when Redis is back (``forget_local``), so each
    outage starts from full buckets. Every such answer is ``degraded``.

    >>> policy = FailurePolicy("deny")
    >>> decision = policy.degraded("k", (Limit(1, 2.0),), 1, StoreUnavailable("down"))
    >>> decision.allowed, round(decision.retry_after, 3), decision.degraded
    (False, 2.0, True)
    >>> local = FailurePolicy("local")
    >>> [local.degraded("k", (Limit(2, 60.0),), 1, StoreUnavailable("down")).allowed
    ...  for _ in range(3)]
    [True, True, False]
    """

    __slots__ = ("_dropped_logged", "_local", "_lock", "on_error")

    def __init__(self, on_error: str) -> None:
        self.on_error = on_error
        self._local: MemoryStore | None = None
        self._lock = threading.Lock()
        self._dropped_logged = False

    def degraded(
        self,
        key: Key,
        limits: tuple[Limit, ...],
        cost: int,
        exc: BucketError,
        *,
        peek: bool = False,
        closed: bool = False,
    ) -> Decision:
        """The answer while Redis is unavailable (or ``exc`` raised, under ``raise``).

        ``closed``: answer as ``deny`` would even under ``raise`` (a batch
        that has charged other calls already may not raise).
        """
        on_error = self.on_error
        if on_error == "raise" and not closed:
            raise exc
        if on_error == "local":
            store = self._local_store()
            decision = store.peek(key, limits, cost) if peek else store.acquire(key, limits, cost)
            return dataclasses.replace(decision, degraded=True)
        if on_error == "allow":
            return make_decision(True, 0, 0.0, 0.0, limits[0], degraded=True)
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

    def refunded(
        self, key: Key, limits: tuple[Limit, ...], tokens: int, exc: StoreUnavailable
    ) -> None:
        """A refund while Redis is unavailable (docs/design.md §4).

        ``local`` gives the tokens back to the local buckets that decide
        meanwhile; ``allow`` and ``deny`` drop it (their answers do not
        depend on the buckets; Redis keeps the charge, logged once per
        outage); ``raise`` raises ``exc``.
        """
        if self.on_error == "local":
            self._local_store().refund(key, limits, tokens)
        else:
            self._drop("refund", exc)

    def drained(
        self, key: Key, limits: tuple[Limit, ...], seconds_ns: int, exc: StoreUnavailable
    ) -> None:
        """A drain while Redis is unavailable: as ``refunded`` says for a refund."""
        if self.on_error == "local":
            self._local_store().drain(key, limits, seconds_ns)
        else:
            self._drop("drain", exc)

    def reset(self, key: Key, limits: tuple[Limit, ...], exc: StoreUnavailable) -> None:
        """A reset while Redis is unavailable: as ``refunded`` says for a refund.

        >>> policy, limit = FailurePolicy("local"), Limit(1, 60.0)
        >>> policy.degraded("k", (limit,), 1, StoreUnavailable("down")).allowed
        True
        >>> policy.reset("k", (limit,), StoreUnavailable("down"))
        >>> policy.degraded("k", (limit,), 1, StoreUnavailable("down")).allowed
        True
        """
        if self.on_error == "local":
            self._local_store().reset(key, limits)
        else:
            self._drop("reset", exc)

    def forget_local(self) -> None:
        """Redis is back: the local buckets served their outage."""
        self._local = None
        self._dropped_logged = False

    def _local_store(self) -> MemoryStore:
        store = self._local
        if store is None:
            with self._lock:
                if self._local is None:
                    self._local = MemoryStore()
                store = self._local
        return store

    def _drop(self, what: str, exc: StoreUnavailable) -> None:
        if self.on_error == "raise":
            raise exc
        if not self._dropped_logged:
            self._dropped_logged = True
            _LOG.warning(
                "Redis is unavailable: a %s was dropped (on_error=%s); "
                "refunds and resets are dropped until it is back",
                what,
                self.on_error,
            )


def breaker_for(settings: Settings, policy: FailurePolicy) -> Breaker:
    """The store's circuit breaker: it ends the policy's local buckets and tells ``on_breaker``.

    >>> breaker = breaker_for(Settings({"on_error": "local"}), FailurePolicy("local"))
    >>> breaker.what, breaker.is_open
    ('on_error=local', False)
    """
    hook = settings.on_breaker

    def changed(state: str, error: StoreUnavailable | None) -> None:
        if state == "closed":
            policy.forget_local()
        if hook is not None:
            hook(state, error)

    return Breaker(
        settings.breaker_cooldown,
        settings.breaker_max_cooldown,
        what=f"on_error={settings.on_error}",
        quiet=settings.on_error == "raise",
        on_change=changed,
    )
