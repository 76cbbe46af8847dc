"""``Limiter`` and ``AsyncLimiter``: the public face over a store.

They validate every argument (so stores can trust them), implement
``wait`` on top of the store, and refuse calls after ``close()``.

>>> from bucketcore import Limit, Limiter
>>> with Limiter("memory://") as limiter:
...     [limiter.try_acquire("alice", Limit(2, 60.0)) for _ in range(3)]
[True, True, False]
"""

from __future__ import annotations

import asyncio
import inspect
import math
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from fractions import Fraction
from types import TracebackType
from typing import Any, NoReturn, cast

from bucketcore._gcra import MAX_DRAIN_NS
from bucketcore._keys import Key, canonical_key, check_call, check_cost, check_key, check_limits
from bucketcore.decision import Decision
from bucketcore.errors import ConfigurationError, StoreClosed, shown
from bucketcore.limit import Limit
from bucketcore.store import (
    AsyncStore,
    CheckedCalls,
    Clock,
    Request,
    Store,
    SyncStoreAsAsync,
    open_async_store,
    open_store,
)

__all__ = ["AsyncLimiter", "Limiter"]

LimitsArg = Limit | Sequence[Limit]


_MAX_TIMEOUT_S = 31_536_000  # a year: no wait a limit can ask for is longer


def _check_timeout(timeout: object) -> float:
    """Seconds to wait at most: ``None`` or ``inf`` for no bound, else 0 to a year."""
    if timeout is None:
        return math.inf
    if type(timeout) not in (int, float):
        raise ConfigurationError(
            f"timeout must be None or a number of seconds, got {shown(timeout)}"
        )
    if timeout == math.inf:
        return math.inf
    if not 0 <= timeout <= _MAX_TIMEOUT_S:  # type: ignore[operator]  # also refuses NaN
        raise ConfigurationError(
            f"timeout must be None or 0 to {_MAX_TIMEOUT_S} seconds, got {shown(timeout)}"
        )
    return float(timeout)  # type: ignore[arg-type]


def _check_requests(requests: object) -> list[Request]:
    """``acquire_many``'s requests, each ``(key, limit or limits, cost)``, validated."""
    try:
        given_requests = list(requests)  # type: ignore[call-overload]
    except TypeError:
        raise ConfigurationError(
            f"requests must be an iterable of (key, limits, cost), got {shown(requests)}"
        ) from None
    checked: list[Request] = []
    for request in given_requests:
        if not isinstance(request, tuple) or len(request) != 3:
            raise ConfigurationError(f"each request is (key, limits, cost), got {shown(request)}")
        key, limits, cost = request
        if isinstance(limits, Limit):
            given: tuple[object, ...] = (limits,)
        elif isinstance(limits, (list, tuple)):
            given = tuple(limits)
        else:
            raise ConfigurationError(
                f"a request's limits are a Limit or a list of them: {shown(limits)}"
            )
        checked.append((key, check_call(key, given, cost), cost))
    return checked


def _check_drain(seconds: object) -> int:
    """``seconds`` of a drain as whole nanoseconds, rounded up (finite, 0 to a year)."""
    if type(seconds) not in (int, float):
        raise ConfigurationError(f"seconds must be a number of seconds, got {seconds!r}")
    value = float(seconds)  # type: ignore[arg-type]
    if not math.isfinite(value) or value < 0 or value * 1e9 > MAX_DRAIN_NS:
        raise ConfigurationError(
            f"seconds must be a finite number from 0 to a year (31536000), got {seconds!r}"
        )
    return math.ceil(Fraction(value) * 1_000_000_000)  # float(int) is exact up to a year


def _refuse_unsatisfiable(limits: tuple[Limit, ...], cost: int) -> None:
    for limit in limits:
        if cost * limit.token_units > limit.capacity_units:
            raise ConfigurationError(
                f"cost {cost} exceeds the burst of {limit}: waiting would never succeed"
            )


def _plan_wait(
    key: object, limits: tuple[object, ...], cost: object, timeout: object, clock: Clock
) -> tuple[tuple[Limit, ...], object, Callable[[], float], Callable[[Decision], bool]]:
    """Validate a ``wait`` call: its limits, its FIFO queue, its time left.

    ``too_long(decision)`` says whether the decision's wait overruns the
    time left. It compares whole nanoseconds, so a wait that needs exactly
    the timeout succeeds (floats rounded up would refuse it).
    """
    checked = check_call(key, limits, cost)
    budget = _check_timeout(timeout)
    _refuse_unsatisfiable(checked, cast(int, cost))
    started = clock()
    budget_ns = None if budget == math.inf else round(budget * 1e9)

    def seconds_left() -> float:
        return budget - (clock() - started) / 1e9

    def too_long(decision: Decision) -> bool:
        if budget_ns is None:
            return False
        # retry_after is the exact nanoseconds rounded up to a float by at
        # most a couple of ulps: round() gives the nanoseconds back.
        return round(decision.retry_after * 1e9) > budget_ns - (clock() - started)

    queue_id = (canonical_key(key), tuple(limit.identity for limit in checked))  # type: ignore[arg-type]
    return checked, queue_id, seconds_left, too_long


class _ClosedStore:
    """Stands in for the store after ``close()``: every use raises."""

    def __getattr__(self, name: str) -> NoReturn:
        raise StoreClosed("this limiter is closed")

    def close(self) -> None:
        return None


class _FifoGate:
    """First come, first served turns for ``wait`` callers on one bucket set."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._queues: dict[object, deque[object]] = {}

    def enter(self, queue_id: object, ticket: object, seconds_left: Callable[[], float]) -> bool:
        """Queue ``ticket`` and block until it is first; False on timeout."""
        with self._condition:
            queue = self._queues.setdefault(queue_id, deque())
            queue.append(ticket)
            while queue[0] is not ticket:
                left = seconds_left()
                if left <= 0:
                    return False
                self._condition.wait(None if left == math.inf else left)
            return True

    def leave(self, queue_id: object, ticket: object) -> None:
        with self._condition:
            queue = self._queues.get(queue_id)
            if queue is not None and ticket in queue:
                queue.remove(ticket)
                if not queue:
                    del self._queues[queue_id]
            self._condition.notify_all()


class Limiter:
    """A token-bucket rate limiter over a store named by URL (or given).

    ``clock`` (monotonic nanoseconds) and ``sleep`` (seconds) are for tests
    and simulations; the store reads the clock, ``wait`` sleeps.

    >>> limiter = Limiter("memory://")
    >>> limiter.acquire(b"card-42", Limit(3, 1.0), cost=2).remaining
    1
    >>> limiter.close()
    """

    def __init__(
        self,
        store: str | Store = "memory://",
        *,
        clock: Clock | None = None,
        sleep: Callable[[float], object] | None = None,
        **options: Any,
    ) -> None:
        if isinstance(store, str):
            self._store: Store = open_store(store, options, clock)
        elif isinstance(store, Store):
            if options or clock is not None:
                raise ConfigurationError("pass clock and options to the store, not the Limiter")
            self._store = store
        else:
            raise ConfigurationError(f"store must be a URL or a Store, got {shown(store)}")
        self._clock: Clock = clock if clock is not None else time.monotonic_ns
        self._sleep = sleep if sleep is not None else time.sleep
        self._gate = _FifoGate()
        offered = getattr(self._store, "checked_calls", None)
        checked: CheckedCalls | None = offered() if offered is not None else None
        if checked is not None:
            # The store's validating entry points answer directly (see
            # bucketcore/store.py); close() removes them.
            self.try_acquire, self.acquire, self.peek = checked  # type: ignore[method-assign]

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Limiter:
        """``Limiter(url, **options)``, spelled out.

        >>> Limiter.from_url("memory://").try_acquire("k", Limit(1, 1))
        True
        """
        return cls(url, **options)

    @classmethod
    def from_env(
        cls, var: str = "BUCKETCORE_URL", default: str = "memory://", **options: Any
    ) -> Limiter:
        """The store named by an environment variable, else ``default``.

        >>> Limiter.from_env("BUCKETCORE_TEST_UNSET").try_acquire("k", Limit(1, 1))
        True
        """
        return cls(os.environ.get(var) or default, **options)

    @property
    def store(self) -> Store:
        """The store this limiter decides with."""
        return self._store

    @property
    def clock(self) -> Clock:
        """The clock this limiter reads (monotonic ns), for code that times around it.

        >>> Limiter(clock=lambda: 42).clock()
        42
        """
        return self._clock

    def try_acquire(self, key: Key, *limits: Limit, cost: int = 1) -> bool:
        """Take ``cost`` tokens from every limit, or none; True if taken.

        >>> Limiter().try_acquire("alice", Limit(10, 1.0), Limit(100, 60.0))
        True
        """
        # memory:// and rocksdb:// never come here (nor to acquire and peek):
        # __init__ binds their own validating entry points.
        return self._store.try_acquire(key, check_call(key, limits, cost), cost)

    def acquire(self, key: Key, *limits: Limit, cost: int = 1) -> Decision:
        """Like ``try_acquire``, with the full ``Decision``.

        >>> Limiter().acquire("alice", Limit(10, 1.0), cost=4).remaining
        6
        """
        return self._store.acquire(key, check_call(key, limits, cost), cost)

    def peek(self, key: Key, *limits: Limit, cost: int = 1) -> Decision:
        """What ``acquire`` would answer now; consumes nothing.

        >>> Limiter().peek("alice", Limit(10, 1.0)).remaining
        9
        """
        return self._store.peek(key, check_call(key, limits, cost), cost)

    def acquire_many(self, requests: Iterable[tuple[Key, LimitsArg, int]]) -> list[Decision]:
        """Several independent ``acquire`` calls; one round trip on Redis.

        >>> once = Limit(1, 9.0)
        >>> [d.allowed for d in Limiter().acquire_many([("a", once, 1), ("a", once, 1)])]
        [True, False]
        """
        return self._store.acquire_many(_check_requests(requests))

    def refund(self, key: Key, *limits: Limit, tokens: int = 1) -> None:
        """Give tokens back (e.g. the work was not done), capped at full.

        >>> limiter = Limiter()
        >>> _ = limiter.acquire("alice", Limit(1, 60.0))
        >>> limiter.refund("alice", Limit(1, 60.0)); limiter.try_acquire("alice", Limit(1, 60.0))
        True
        """
        check_key(key)
        check_cost(tokens, "tokens")
        self._store.refund(key, check_limits(limits), tokens)

    def drain(self, key: Key, *limits: Limit, seconds: float) -> None:
        """Empty the buckets until ``seconds`` from now (a server's ``Retry-After``).

        No whole token before then; at that instant one is back (a call of
        cost 1 is allowed), then they refill at their rate. Never fuller
        than they were; longer than a full refill is fine. ``seconds`` is
        from 0 to a year.

        >>> limiter, limit = Limiter(clock=lambda: 0), Limit(10, 1.0)
        >>> limiter.drain("api.example", limit, seconds=2.5)
        >>> limiter.acquire("api.example", limit).retry_after
        2.5000000000000004
        """
        check_key(key)
        seconds_ns = _check_drain(seconds)
        self._store.drain(key, check_limits(limits), seconds_ns)

    def reset(self, key: Key, *limits: Limit) -> None:
        """Make the buckets full again.

        >>> Limiter().reset("alice", Limit(1, 60.0))
        """
        check_key(key)
        self._store.reset(key, check_limits(limits))

    def wait(
        self, key: Key, *limits: Limit, cost: int = 1, timeout: float | None = None
    ) -> Decision:
        """Block until the tokens are taken, or until ``timeout`` seconds.

        Sleeps exactly until the tokens are due, callers on the same key are
        served first come, first served, and a wait that cannot succeed
        within ``timeout`` returns the denied Decision at once, consuming
        nothing. A cost above the burst raises ``ConfigurationError``.

        >>> Limiter().wait("alice", Limit(10, 1.0), timeout=1.0).allowed
        True
        """
        checked, queue_id, seconds_left, too_long = _plan_wait(
            key, limits, cost, timeout, self._clock
        )
        ticket = object()
        store = self._store
        try:
            if not self._gate.enter(queue_id, ticket, seconds_left):
                return store.peek(key, checked, cost)
            while True:
                decision = store.acquire(key, checked, cost)
                if decision.allowed or too_long(decision):
                    return decision
                self._sleep(decision.retry_after)
        finally:
            self._gate.leave(queue_id, ticket)

    def close(self) -> None:
        """Release the store; later calls raise ``StoreClosed``."""
        store, self._store = self._store, cast(Store, _ClosedStore())
        for bound in ("try_acquire", "acquire", "peek"):
            self.__dict__.pop(bound, None)
        store.close()

    def __enter__(self) -> Limiter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _AsyncClosedStore(_ClosedStore):
    async def close(self) -> None:  # type: ignore[override]
        return None


class AsyncLimiter:
    """``Limiter`` for asyncio: the same methods, as coroutines.

    Memory decides inline (it never blocks); Redis uses ``redis.asyncio``.

    >>> import asyncio
    >>> async def main():
    ...     async with AsyncLimiter() as limiter:
    ...         return (await limiter.acquire("alice", Limit(5, 1.0))).remaining
    >>> asyncio.run(main())
    4
    """

    def __init__(
        self,
        store: str | AsyncStore | Store = "memory://",
        *,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
        **options: Any,
    ) -> None:
        if isinstance(store, str):
            self._store: AsyncStore = open_async_store(store, options, clock)
        elif isinstance(store, AsyncStore) and inspect.iscoroutinefunction(store.acquire):
            if options or clock is not None:
                raise ConfigurationError("pass clock and options to the store, not the limiter")
            self._store = store
        elif isinstance(store, Store):
            if options or clock is not None:
                raise ConfigurationError("pass clock and options to the store, not the limiter")
            self._store = SyncStoreAsAsync(store)
        else:
            raise ConfigurationError(f"store must be a URL or a Store, got {shown(store)}")
        self._clock: Clock = clock if clock is not None else time.monotonic_ns
        self._sleep = sleep if sleep is not None else asyncio.sleep
        self._turns: dict[object, tuple[asyncio.Lock, list[int]]] = {}

    @classmethod
    def from_url(cls, url: str, **options: Any) -> AsyncLimiter:
        """``AsyncLimiter(url, **options)``, spelled out."""
        return cls(url, **options)

    @classmethod
    def from_env(
        cls, var: str = "BUCKETCORE_URL", default: str = "memory://", **options: Any
    ) -> AsyncLimiter:
        """The store named by an environment variable, else ``default``."""
        return cls(os.environ.get(var) or default, **options)

    @property
    def store(self) -> AsyncStore:
        """The store this limiter decides with."""
        return self._store

    @property
    def clock(self) -> Clock:
        """See ``Limiter.clock``."""
        return self._clock

    async def try_acquire(self, key: Key, *limits: Limit, cost: int = 1) -> bool:
        """See ``Limiter.try_acquire``."""
        return await self._store.try_acquire(key, check_call(key, limits, cost), cost)

    async def acquire(self, key: Key, *limits: Limit, cost: int = 1) -> Decision:
        """See ``Limiter.acquire``."""
        return await self._store.acquire(key, check_call(key, limits, cost), cost)

    async def peek(self, key: Key, *limits: Limit, cost: int = 1) -> Decision:
        """See ``Limiter.peek``."""
        return await self._store.peek(key, check_call(key, limits, cost), cost)

    async def acquire_many(self, requests: Iterable[tuple[Key, LimitsArg, int]]) -> list[Decision]:
        """See ``Limiter.acquire_many``."""
        return await self._store.acquire_many(_check_requests(requests))

    async def refund(self, key: Key, *limits: Limit, tokens: int = 1) -> None:
        """See ``Limiter.refund``."""
        check_key(key)
        check_cost(tokens, "tokens")
        await self._store.refund(key, check_limits(limits), tokens)

    async def drain(self, key: Key, *limits: Limit, seconds: float) -> None:
        """See ``Limiter.drain``."""
        check_key(key)
        seconds_ns = _check_drain(seconds)
        await self._store.drain(key, check_limits(limits), seconds_ns)

    async def reset(self, key: Key, *limits: Limit) -> None:
        """See ``Limiter.reset``."""
        check_key(key)
        await self._store.reset(key, check_limits(limits))

    async def wait(
        self, key: Key, *limits: Limit, cost: int = 1, timeout: float | None = None
    ) -> Decision:
        """See ``Limiter.wait``; sleeps with ``asyncio.sleep``.

        A waiter cancelled while it waits consumes nothing: tokens are only
        taken by the acquire that succeeds, never reserved ahead. (One
        cancelled while that acquire is already on its way to Redis may
        still have been charged; the answer is then dropped.)
        """
        checked, queue_id, seconds_left, too_long = _plan_wait(
            key, limits, cost, timeout, self._clock
        )
        turn, users = self._turns.setdefault(queue_id, (asyncio.Lock(), [0]))
        users[0] += 1
        store = self._store
        try:
            # asyncio.Lock wakes its waiters in arrival order: first come, first served.
            if seconds_left() == math.inf:
                await turn.acquire()
            else:
                try:
                    await asyncio.wait_for(turn.acquire(), max(seconds_left(), 0.0))
                except TimeoutError:
                    return await store.peek(key, checked, cost)
            try:
                while True:
                    decision = await store.acquire(key, checked, cost)
                    if decision.allowed or too_long(decision):
                        return decision
                    await self._sleep(decision.retry_after)
            finally:
                turn.release()
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._turns[queue_id]

    async def close(self) -> None:
        """Release the store; later calls raise ``StoreClosed``."""
        store, self._store = self._store, cast(AsyncStore, _AsyncClosedStore())
        await store.close()

    async def __aenter__(self) -> AsyncLimiter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
