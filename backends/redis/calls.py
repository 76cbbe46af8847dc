"""Each call as an object, without I/O: it builds its command and reads its reply.

A store asks ``Calls`` (one per store: the prefix, the plans, the deny
cache, the failure policy) for a call object, sends ``call.command`` and
hands the reply to ``call.finish``, or the ``StoreUnavailable`` it got to
``call.fail``. A call the deny cache can answer has its ``answer`` already
and is not sent. ``acquire_many``'s call object is ``runs.Many``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bucketcore._gcra import Step, as_stored, decision_from_steps, evaluate
from bucketcore._keys import Key, key_bytes
from bucketcore.decision import Decision, from_nanoseconds, make_decision, seconds_at_least
from bucketcore.errors import CorruptState, StoreUnavailable
from bucketcore.limit import Limit

from .options import Settings
from .policy import DenyCache, FailurePolicy
from .script import ACQUIRE, DRAIN, PEEK, REFUND, SCRIPT_SHA, TRY, Plan, Plans

__all__ = ["Calls", "Decide", "Refund", "escape_key", "step"]


def escape_key(key: Key) -> bytes:
    """The hash-tag content for a user key: no braces, never empty.

    ``%``, ``{`` and ``}`` become ``%25``, ``%7B`` and ``%7D``, so the tag
    holds no ``}`` (the first one after the tag's ``{`` ends it) and the
    mapping is one-to-one. The empty key becomes a lone ``%``, which no
    other key produces (every other ``%`` starts an escape), because Redis
    hashes the whole name when a tag is empty, which would split one key's
    limits over several cluster slots.

    >>> escape_key("user:{42}"), escape_key(b""), escape_key("100%")
    (b'user:%7B42%7D', b'%', b'100%25')
    """
    data = key if type(key) is bytes else key_bytes(key)
    if not data:
        return b"%"
    if b"%" in data or b"{" in data or b"}" in data:
        data = data.replace(b"%", b"%25").replace(b"{", b"%7B").replace(b"}", b"%7D")
    return data


def step(limit: Limit, debt: int, cost: int) -> Step:
    """``_gcra.evaluate`` of a debt the script replied (clamped there, a hold kept).

    >>> step(Limit(1, 1.0), 3 * 10**9, 1).retry_ns  # drained: 3 s, not an empty bucket's 1 s
    3000000000
    """
    held = None if debt <= limit.capacity_units else as_stored(limit, debt, 0)
    return evaluate(limit, debt, 0, cost, held)


def unexpected(reply: Any) -> CorruptState:
    """The error for a reply the script cannot have given."""
    return CorruptState(f"unexpected reply from the bucketcore script: {reply!r}")


def disagree(reply: Any) -> CorruptState:
    """The error for a reply whose verdict the core's arithmetic does not share."""
    return CorruptState(f"the bucketcore script and core disagree: {reply!r}")


class Calls:
    """One store's call maker, and the reading every call shares.

    >>> from bucketcore.backends.redis.options import Settings
    >>> calls = Calls(Settings({"prefix": "app:"}), cluster=False)
    >>> calls.keys("alice", (Limit(10, 1.0, name="api"),))
    [b'app:{alice}n:api']
    """

    __slots__ = ("cluster", "deny", "plans", "policy", "prefix")

    def __init__(self, settings: Settings, cluster: bool) -> None:
        self.prefix = settings.prefix
        self.cluster = cluster
        self.plans = Plans()
        self.deny = DenyCache(settings.deny_cache_size) if settings.deny_cache else None
        self.policy = FailurePolicy(settings.on_error)

    # the call objects

    def acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decide:
        """Take ``cost`` from every limit or from none."""
        return Decide(self, ACQUIRE, key, limits, cost)

    def try_acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decide:
        """``acquire``, answered as a bool."""
        return Decide(self, TRY, key, limits, cost)

    def peek(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decide:
        """What ``acquire`` would say; takes nothing."""
        return Decide(self, PEEK, key, limits, cost)

    def refund(self, key: Key, limits: tuple[Limit, ...], tokens: int) -> Refund:
        """Give ``tokens`` back to every limit, capped at full."""
        args = [plan.refund_args(tokens) for plan in self._plans(limits)]
        policy = self.policy
        return Refund(
            self, key, limits, REFUND, args, lambda exc: policy.refunded(key, limits, tokens, exc)
        )

    def drain(self, key: Key, limits: tuple[Limit, ...], seconds_ns: int) -> Refund:
        """Hold every limit's bucket empty for ``seconds_ns`` (``_gcra.drained``)."""
        args = [plan.drain_args(seconds_ns) for plan in self._plans(limits)]
        policy = self.policy
        return Refund(
            self, key, limits, DRAIN, args, lambda exc: policy.drained(key, limits, seconds_ns, exc)
        )

    def _plans(self, limits: tuple[Limit, ...]) -> list[Plan]:
        return [self.plans.get(limit) for limit in limits]

    def reset(self, key: Key, limits: tuple[Limit, ...]) -> list[bytes]:
        """The Redis keys to delete to make these buckets full again."""
        if self.deny is not None:
            self.deny.forget(escape_key(key))
        return self.keys(key, limits)

    # building

    def keys(self, key: Key, limits: tuple[Limit, ...]) -> list[bytes]:
        """The Redis key of each bucket: ``<prefix>{<escaped key>}<limit identity>``."""
        base = self.prefix + b"{" + escape_key(key)
        return [base + self.plans.get(limit).suffix for limit in limits]

    def parts(
        self, tag: bytes, limits: tuple[Limit, ...], cost: int
    ) -> tuple[list[Plan], list[bytes], list[bytes]]:
        """The plans, the bucket keys and their script arguments."""
        base = self.prefix + b"{" + tag
        plans = [self.plans.get(limit) for limit in limits]
        keys = [base + plan.suffix for plan in plans]
        if len(plans) == 1:
            return plans, keys, list(plans[0].args(cost))
        args: list[bytes] = []
        for plan in plans:
            args += plan.args(cost)
        return plans, keys, args

    # reading

    @staticmethod
    def steps(plans: list[Plan], cost: int, reply: Any) -> list[Step]:
        """Each bucket's step, from the debts the script replied."""
        if type(reply) is not list or len(reply) != 2 + 2 * len(plans):
            raise unexpected(reply)
        steps = [
            step(plan.limit, reply[2 + 2 * i] * plan.w + reply[3 + 2 * i], cost)
            for i, plan in enumerate(plans)
        ]
        if all(step.allowed for step in steps) != (reply[1] == 1):
            raise disagree(reply)
        return steps

    def decision(
        self,
        tag: bytes,
        limits: tuple[Limit, ...],
        plans: list[Plan],
        cost: int,
        reply: Any,
        started: int,
    ) -> Decision:
        """The Decision for a reply; a denial is remembered if ``started`` is given."""
        if len(plans) == 1 and type(reply) is list and len(reply) == 4:
            plan = plans[0]
            debt = reply[2] * plan.w + reply[3]
            if reply[1] == 1:  # _gcra.evaluate's allowed case, inlined: the common call
                limit = plan.limit
                after = debt + cost * limit.token_units
                if debt < 0 or after > plan.capacity:
                    raise disagree(reply)
                reset_ns = -(-after // limit.units_per_ns)
                remaining = (plan.capacity - after) // limit.token_units
                return make_decision(True, remaining, 0.0, seconds_at_least(reset_ns), limits[0])
            one = step(plan.limit, debt, cost)
            if one.allowed != (reply[1] == 1):
                raise disagree(reply)
            decision = from_nanoseconds(
                one.allowed, one.remaining, one.retry_ns, one.reset_ns, limits[0]
            )
        else:
            decision = decision_from_steps(limits, self.steps(plans, cost, reply))
        if not decision.allowed and self.deny is not None and started:
            self.deny.remember(tag, limits, plans, reply, started)
        return decision


class Decide:
    """One acquire, try_acquire or peek.

    >>> from bucketcore.backends.redis.options import Settings
    >>> calls = Calls(Settings({"prefix": "app:"}), cluster=False)
    >>> call = calls.acquire("alice", (Limit(10, 1.0, name="api"),), 1)
    >>> call.command[2:5]
    [1, b'app:{alice}n:api', b'a']
    >>> call.finish([1_700_000_000_000_000, 1, 0, 0]).remaining  # an empty bucket's debt: 0
    9
    """

    __slots__ = (
        "answer",
        "args",
        "calls",
        "cost",
        "key",
        "keys",
        "limits",
        "mode",
        "plans",
        "started",
        "tag",
    )

    def __init__(
        self, calls: Calls, mode: bytes, key: Key, limits: tuple[Limit, ...], cost: int
    ) -> None:
        self.calls, self.mode, self.limits, self.cost = calls, mode, limits, cost
        self.key = key
        self.started = time.monotonic_ns()
        self.tag = tag = escape_key(key)
        self.answer: Decision | bool | None = None
        deny = calls.deny
        if mode != PEEK and deny is not None and deny.entries:
            cached = deny.answer(tag, limits, cost, self.started)
            if cached is not None:
                self.answer = cached if mode == ACQUIRE else False
                return  # answered: never sent
        self.plans, self.keys, self.args = calls.parts(tag, limits, cost)

    @property
    def command(self) -> list[Any]:
        """The EVALSHA to send."""
        return ["EVALSHA", SCRIPT_SHA, len(self.keys), *self.keys, self.mode, *self.args]

    def entry(self) -> tuple[bytes, list[bytes], list[bytes], bytes]:
        """This call inside a many-call run (``runs.build_runs``)."""
        plans, cost = self.plans, self.cost
        if len(plans) == 1:
            packed = plans[0].packed_args(cost)
        else:
            packed = b"".join([plan.packed_args(cost) for plan in plans])
        # A try inside a many-call run answers in full; finish reads both.
        return (ACQUIRE if self.mode == TRY else self.mode, self.keys, self.args, packed)

    def finish(self, reply: Any) -> Decision | bool:
        """The answer the reply gives."""
        calls = self.calls
        if self.mode != TRY:
            started = self.started if self.mode == ACQUIRE else 0
            return calls.decision(self.tag, self.limits, self.plans, self.cost, reply, started)
        if reply == 1:
            return True
        calls.steps(self.plans, self.cost, reply)
        if reply[1] == 1:
            return True
        if calls.deny is not None:
            calls.deny.remember(self.tag, self.limits, self.plans, reply, self.started)
        return False

    def fail(self, exc: StoreUnavailable) -> Decision | bool:
        """The failure policy's answer (or ``exc`` raised)."""
        mode = self.mode
        policy = self.calls.policy
        decision = policy.degraded(self.key, self.limits, self.cost, exc, peek=mode == PEEK)
        return decision.allowed if mode == TRY else decision


class Refund:
    """Give tokens back, or drain; while Redis is out, the failure policy says what happens.

    >>> from bucketcore.backends.redis.options import Settings
    >>> call = Calls(Settings({}), cluster=False).refund("k", (Limit(1, 1.0, name="x"),), 1)
    >>> call.command[3:5], call.finish(1_700_000_000_000_000)
    ([b'bucketcore:{k}n:x', b'r'], None)
    """

    __slots__ = ("command", "on_outage")
    answer = None

    def __init__(
        self,
        calls: Calls,
        key: Key,
        limits: tuple[Limit, ...],
        mode: bytes,
        args: list[tuple[bytes, bytes]],
        on_outage: Callable[[StoreUnavailable], None],
    ) -> None:
        tag = escape_key(key)
        if calls.deny is not None:
            calls.deny.forget(tag)
        self.on_outage = on_outage
        base = calls.prefix + b"{" + tag
        command: list[Any] = ["EVALSHA", SCRIPT_SHA, len(limits)]
        command += [base + calls.plans.get(limit).suffix for limit in limits]
        command.append(mode)
        for bucket_args in args:
            command += bucket_args
        self.command = command

    def finish(self, reply: Any) -> None:
        """The reply is the server's time: nothing to read."""
        if type(reply) is not int:
            raise unexpected(reply)

    def fail(self, exc: StoreUnavailable) -> None:
        """Redis is unavailable: the local buckets take it, or it is dropped, or raised."""
        self.on_outage(exc)
