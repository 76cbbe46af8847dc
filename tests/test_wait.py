"""wait(): sleeps exactly until due, first come first served, never consumes on timeout."""

from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest

from bucketcore import AsyncLimiter, Limit, Limiter
from bucketcore.errors import ConfigurationError
from tests.conftest import FakeClock

TEN_PER_SECOND = Limit(10, 1.0, burst=1)


def test_wait_sleeps_once_for_exactly_the_retry_time(clock: FakeClock) -> None:
    limiter = Limiter(clock=clock, sleep=clock.sleep)
    assert limiter.acquire("k", TEN_PER_SECOND)
    denied = limiter.peek("k", TEN_PER_SECOND)
    decision = limiter.wait("k", TEN_PER_SECOND, timeout=5.0)
    assert decision.allowed
    assert clock.sleeps == [denied.retry_after]  # one sleep, no polling
    assert math.isclose(denied.retry_after, 0.1, rel_tol=1e-9)


def test_wait_without_a_timeout_waits_as_long_as_needed(clock: FakeClock) -> None:
    limiter = Limiter(clock=clock, sleep=clock.sleep)
    hourly = Limit(1, 3600.0)
    limiter.acquire("k", hourly)
    assert limiter.wait("k", hourly).allowed
    assert len(clock.sleeps) == 1
    assert 3599.999 < clock.sleeps[0] <= 3600.000001


def test_wait_returns_the_denial_at_once_when_the_timeout_is_too_short(clock: FakeClock) -> None:
    limiter = Limiter(clock=clock, sleep=clock.sleep)
    limiter.acquire("k", TEN_PER_SECOND)
    decision = limiter.wait("k", TEN_PER_SECOND, timeout=0.05)
    assert not decision
    assert clock.sleeps == []
    clock.advance(0.1)
    assert limiter.try_acquire("k", TEN_PER_SECOND)  # nothing was consumed


def test_wait_refuses_a_cost_above_the_burst(clock: FakeClock) -> None:
    limiter = Limiter(clock=clock, sleep=clock.sleep)
    with pytest.raises(ConfigurationError, match="never"):
        limiter.wait("k", TEN_PER_SECOND, cost=2)
    assert clock.sleeps == []


@pytest.mark.parametrize("timeout", [-1.0, math.nan, "1", True])
def test_wait_rejects_bad_timeouts(timeout: object) -> None:
    with pytest.raises(ConfigurationError):
        Limiter().wait("k", TEN_PER_SECOND, timeout=timeout)  # type: ignore[arg-type]


def test_waiters_on_one_key_are_served_first_come_first_served() -> None:
    # Real threads and real time (the order is the point), no timing asserted.
    limiter = Limiter()
    limit = Limit(5, 1.0, burst=1)  # one token every 200 ms
    limiter.acquire("k", limit)
    served: list[int] = []

    def waiter(index: int) -> None:
        assert limiter.wait("k", limit, timeout=30.0).allowed
        served.append(index)

    def arrived() -> int:
        return sum(len(queue) for queue in limiter._gate._queues.values()) + len(served)

    threads = [threading.Thread(target=waiter, args=(index,)) for index in range(5)]
    for index, thread in enumerate(threads):
        thread.start()
        deadline = time.monotonic() + 10
        while arrived() <= index and time.monotonic() < deadline:
            time.sleep(0.0005)  # let this waiter join the queue before the next comes
    for thread in threads:
        thread.join(30)
    assert served == [0, 1, 2, 3, 4]


def test_async_wait_sleeps_with_asyncio_and_a_cancelled_waiter_takes_nothing(
    clock: FakeClock,
) -> None:
    slept: list[float] = []
    release = asyncio.Event()

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        await release.wait()
        clock.advance(seconds)

    async def scenario() -> None:
        limiter = AsyncLimiter(clock=clock, sleep=fake_sleep)
        assert await limiter.acquire("k", TEN_PER_SECOND)
        waiter = asyncio.create_task(limiter.wait("k", TEN_PER_SECOND))
        while not slept:
            await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        clock.advance(0.1)
        # The cancelled waiter took nothing: the refilled token is still there.
        assert (await limiter.acquire("k", TEN_PER_SECOND)).allowed
        await limiter.close()

    asyncio.run(scenario())


def test_async_wait_times_out_without_consuming(clock: FakeClock) -> None:
    async def fake_sleep(seconds: float) -> None:
        clock.advance(seconds)

    async def scenario() -> None:
        limiter = AsyncLimiter(clock=clock, sleep=fake_sleep)
        await limiter.acquire("k", TEN_PER_SECOND)
        assert not await limiter.wait("k", TEN_PER_SECOND, timeout=0.01)
        decision = await limiter.wait("k", TEN_PER_SECOND, timeout=1.0)
        assert decision.allowed
        await limiter.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("period", [2.0, 0.3, 7.0 / 3, 86400.0 * 10])
def test_a_wait_needing_exactly_its_timeout_succeeds(clock: FakeClock, period: float) -> None:
    # docs/design.md §2: rounding must not refuse a wait that fits exactly.
    limiter = Limiter(clock=clock, sleep=clock.sleep)
    once = Limit(1, period)
    assert limiter.acquire("k", once)
    needed = limiter.peek("k", once).retry_after
    assert limiter.wait("k", once, timeout=period).allowed
    assert clock.sleeps == [needed]


def test_a_wait_one_nanosecond_short_is_refused_without_sleeping(clock: FakeClock) -> None:
    limiter = Limiter(clock=clock, sleep=clock.sleep)
    once = Limit(1, 2.0)
    assert limiter.acquire("k", once)
    assert not limiter.wait("k", once, timeout=1.999_999_999)
    assert clock.sleeps == []


def test_an_async_wait_needing_exactly_its_timeout_succeeds(clock: FakeClock) -> None:
    async def main() -> bool:
        async def sleep(seconds: float) -> None:
            clock.sleep(seconds)

        limiter = AsyncLimiter(clock=clock, sleep=sleep)
        once = Limit(1, 2.0)
        assert await limiter.acquire("k", once)
        return (await limiter.wait("k", once, timeout=2.0)).allowed

    assert asyncio.run(main())
