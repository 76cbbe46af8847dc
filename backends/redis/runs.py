"""Many calls in one script run: ``acquire_many``, and concurrent asyncio calls.

A run holds at most ``RUN_SIZE`` calls (a script blocks the server while it
runs) and, on a cluster, the calls of one hash slot only. Its reply is the
server's time, then each call's verdict and debts, which ``spread`` cuts
into one single-call reply per call. ``Many`` is ``acquire_many``'s call
object: its runs' commands out, a Decision per request back.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from redis.crc import key_slot

from bucketcore.decision import Decision, from_nanoseconds
from bucketcore.errors import BucketError, StoreUnavailable
from bucketcore.store import Request

from .calls import Calls, disagree, escape_key, unexpected
from .calls import step as one_step
from .script import ACQUIRE, MANY, PEEK, SCRIPT_SHA, Plan, resp

__all__ = ["RUN_SIZE", "Entry", "Many", "Run", "build_runs", "spread"]

RUN_SIZE = 128
"""Calls per script run at most: a script blocks the server while it runs."""

Entry = tuple[bytes, list[bytes], Sequence[bytes], bytes]
"""One call inside a run: (mode, bucket keys, their arguments, the same arguments in RESP)."""
Run = tuple[list[int], Any]
"""A run: the indexes of its entries, and its command (packed bytes, or a list on a cluster)."""

_EVALSHA_RESP = resp([b"EVALSHA", SCRIPT_SHA.encode()])
_MANY_RESP = resp([MANY])
_ONE_BUCKET = {mode: resp([mode, b"1"]) for mode in (ACQUIRE, PEEK)}


def build_runs(entries: list[Entry], cluster: bool) -> list[Run]:
    """The script runs that decide ``entries``.

    >>> entries = [(ACQUIRE, [b"p{k%d}x" % i], [b"1"] * 5, resp([b"1"] * 5)) for i in range(200)]
    >>> [len(indexes) for indexes, command in build_runs(entries, cluster=False)]
    [128, 72]
    """
    groups: dict[int, list[int]] = {}
    if cluster:
        for index, entry in enumerate(entries):
            groups.setdefault(key_slot(entry[1][0]), []).append(index)
    else:
        groups[0] = list(range(len(entries)))
    runs: list[Run] = []
    for indexes in groups.values():
        for start in range(0, len(indexes), RUN_SIZE):
            chunk = indexes[start : start + RUN_SIZE]
            if cluster:  # a list: RedisCluster may need to redirect it
                run_keys: list[Any] = []
                run_args: list[Any] = [MANY]
                for index in chunk:
                    mode, keys, args, _ = entries[index]
                    run_keys += keys
                    run_args += (mode, len(keys), *args)
                runs.append((chunk, ["EVALSHA", SCRIPT_SHA, len(run_keys), *run_keys, *run_args]))
            else:  # packed here: most of each call's arguments were packed once
                runs.append((chunk, _packed_run([entries[index] for index in chunk])))
    return runs


def _packed_run(entries: list[Entry]) -> bytes:
    """One many-call EVALSHA in the wire protocol."""
    key_parts: list[bytes] = []
    arg_parts = [_MANY_RESP]
    count = 4  # EVALSHA, sha, numkeys, "m"
    for mode, keys, args, packed in entries:
        if len(keys) == 1:
            key = keys[0]
            key_parts.append(b"$%d\r\n%s\r\n" % (len(key), key))
            arg_parts.append(_ONE_BUCKET[mode])
        else:
            key_parts += [b"$%d\r\n%s\r\n" % (len(key), key) for key in keys]
            arg_parts.append(resp([mode, b"%d" % len(keys)]))
        arg_parts.append(packed)
        count += len(keys) + 2 + len(args)
    head = b"*%d\r\n" % count + _EVALSHA_RESP + resp([b"%d" % len(key_parts)])
    return b"".join([head, *key_parts, *arg_parts])


def spread(runs: list[Run], replies: list[Any], entries: list[Entry]) -> list[Any]:
    """Each entry's own single-call reply (or the error of the run it was in).

    >>> entries = [(ACQUIRE, [b"a"], [], b""), (ACQUIRE, [b"b"], [], b"")]
    >>> spread([([0, 1], b"")], [[77, 1, 0, 0, 0, 5, 0]], entries)
    [[77, 1, 0, 0], [77, 0, 5, 0]]
    """
    per_entry: list[Any] = [None] * len(entries)
    for (chunk, _), reply in zip(runs, replies, strict=True):
        if isinstance(reply, BucketError):
            for index in chunk:
                per_entry[index] = reply
            continue
        if type(reply) is not list or not reply:
            raise unexpected(reply)
        at = 1
        for index in chunk:
            end = at + 1 + 2 * len(entries[index][1])
            per_entry[index] = [reply[0], *reply[at:end]]
            at = end
        if at != len(reply):
            raise unexpected(reply)
    return per_entry


class Many:
    """``acquire_many``: the deny cache's answers now, the rest in runs.

    >>> from bucketcore.backends.redis.options import Settings
    >>> from bucketcore.limit import Limit
    >>> calls = Calls(Settings({}), cluster=False)
    >>> many = Many(calls, [("a", (Limit(2, 1.0),), 1), ("b", (Limit(2, 1.0),), 3)])
    >>> len(many.commands)
    1
    >>> [d.allowed for d in many.finish([[1_700_000_000_000_000, 1, 0, 0, 0, 0, 0]])]
    [True, False]
    """

    __slots__ = (
        "calls",
        "commands",
        "entries",
        "pending",
        "requests",
        "results",
        "runs",
        "started",
    )

    def __init__(self, calls: Calls, requests: Sequence[Request]) -> None:
        self.calls, self.requests = calls, requests
        self.started = now = time.monotonic_ns()
        self.results: list[Decision | None] = [None] * len(requests)
        self.pending: list[tuple[int, bytes, list[Plan]]] = []
        self.entries: list[Entry] = []
        deny = calls.deny if calls.deny is not None and calls.deny.entries else None
        known = calls.plans.known
        head = calls.prefix + b"{"
        for index, (key, limits, cost) in enumerate(requests):
            tag = escape_key(key)
            if deny is not None:
                cached = deny.answer(tag, limits, cost, now)
                if cached is not None:
                    self.results[index] = cached
                    continue
            plan = known.get(limits[0].identity) if len(limits) == 1 else None
            if plan is not None and plan.limit is limits[0] and cost in plan.packed:
                # The common case, inlined: one limit already planned, a usual cost.
                self.pending.append((index, tag, [plan]))
                entry = (ACQUIRE, [head + tag + plan.suffix], plan.costs[cost], plan.packed[cost])
                self.entries.append(entry)
                continue
            plans, keys, args = calls.parts(tag, limits, cost)
            packed = b"".join([plan.packed_args(cost) for plan in plans])
            self.pending.append((index, tag, plans))
            self.entries.append((ACQUIRE, keys, args, packed))
        self.runs = build_runs(self.entries, calls.cluster) if self.entries else []
        self.commands = [command for _, command in self.runs]

    def finish(self, replies: list[Any]) -> list[Decision]:
        """A Decision per request, from each run's reply (or its error).

        Never raises once a run has charged: the runs that failed beside it
        are then answered by the failure policy, closed under ``raise``.
        """
        charged = not all(isinstance(reply, BucketError) for reply in replies)
        for (chunk, _), reply in zip(self.runs, replies, strict=True):
            if isinstance(reply, BucketError):
                self._fail(chunk, reply, charged)
            else:
                self._finish_run(chunk, reply)
        return self.results  # type: ignore[return-value]

    def _fail(self, chunk: list[int], error: BucketError, charged: bool) -> None:
        if not charged and not isinstance(error, StoreUnavailable):
            raise error
        for at in chunk:
            index = self.pending[at][0]
            key, limits, cost = self.requests[index]
            self.results[index] = self.calls.policy.degraded(
                key, limits, cost, error, closed=charged
            )

    def _finish_run(self, chunk: list[int], reply: Any) -> None:
        entries, pending, requests = self.entries, self.pending, self.requests
        results = self.results
        expected = 1 + sum(1 + 2 * len(entries[at][1]) for at in chunk)
        if type(reply) is not list or len(reply) != expected:
            raise unexpected(reply)
        remember = self.calls.deny is not None
        at = 1
        for position in chunk:
            index, tag, plans = pending[position]
            _, limits, cost = requests[index]
            if len(plans) == 1:  # the common case, without a reply of its own
                plan = plans[0]
                step = one_step(plan.limit, reply[at + 1] * plan.w + reply[at + 2], cost)
                if step.allowed != (reply[at] == 1):
                    raise disagree(reply)
                if step.allowed or not remember:
                    results[index] = from_nanoseconds(
                        step.allowed, step.remaining, step.retry_ns, step.reset_ns, limits[0]
                    )
                    at += 3
                    continue
            end = at + 1 + 2 * len(plans)
            one = [reply[0], *reply[at:end]]
            results[index] = self.calls.decision(tag, limits, plans, cost, one, self.started)
            at = end
