"""rate_limited: the plain decorator / context manager, on a fake clock."""

from __future__ import annotations

import asyncio
import math

import pytest

from bucketcore import AsyncLimiter, Decision, Limit, Limiter, RateLimited, rate_limited
from bucketcore.errors import BucketError, ConfigurationError, StoreUnavailable
from bucketcore.hooks import DecisionEvent
from tests.conftest import FakeClock
from tests.stores import DownStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(clock: FakeClock) -> Limiter:
    return Limiter(clock=clock, sleep=clock.sleep)


def test_a_denied_call_raises_with_the_decision_and_does_not_run(limiter: Limiter) -> None:
    ran: list[int] = []

    @rate_limited(limiter, "2/minute", key="job", name="jobs")
    def job(n: int) -> int:
        ran.append(n)
        return n

    assert [job(1), job(2)] == [1, 2]
    with pytest.raises(RateLimited) as caught:
        job(3)
    assert ran == [1, 2]
    assert isinstance(caught.value, BucketError)
    decision = caught.value.decision
    assert isinstance(decision, Decision)
    assert not decision.allowed
    assert decision.limit.name == "jobs"
    assert caught.value.retry_after == pytest.approx(30.0)
    assert str(caught.value) == "rate limited by 'jobs': retry in 30 s"


def test_the_key_function_sees_the_call_arguments(limiter: Limiter) -> None:
    @rate_limited(limiter, "1/minute", key=lambda user, *, body: f"mail:{user}")
    def send(user: str, *, body: str) -> str:
        return body

    assert send("ann", body="a") == "a"
    assert send("bob", body="b") == "b"
    with pytest.raises(RateLimited):
        send("ann", body="again")


def test_wraps_keeps_the_name_and_docstring(limiter: Limiter) -> None:
    @rate_limited(limiter, "1/s", key="k")
    def documented() -> None:
        """Docs."""

    assert documented.__name__ == "documented"
    assert documented.__doc__ == "Docs."


def test_wait_blocks_until_the_tokens_are_due(limiter: Limiter, clock: FakeClock) -> None:
    @rate_limited(limiter, "2/s", key="k", wait=True)
    def tick() -> int:
        return clock.now_ns

    start = clock.now_ns
    times = [tick() - start for _ in range(5)]
    exact = [0, 0, 500_000_000, 1_000_000_000, 1_500_000_000]
    # Sleeps round up to whole nanoseconds: never early, at most 1 ns late a sleep.
    assert all(0 <= got - want <= 3 for got, want in zip(times, exact, strict=True)), times


def test_wait_gives_up_after_the_timeout_with_rate_limited(
    limiter: Limiter, clock: FakeClock
) -> None:
    guard = rate_limited(limiter, "1/10s", key="k", wait=True, timeout=5.0)
    with guard:
        pass
    before = clock.now_ns
    with pytest.raises(RateLimited), guard:
        pytest.fail("the block must not run")
    assert clock.now_ns == before  # a wait that cannot succeed in time returns at once


def test_the_context_manager_gives_the_decision(limiter: Limiter) -> None:
    with rate_limited(limiter, "3/minute", key="block") as decision:
        assert decision.remaining == 2
    with rate_limited(limiter, "3/minute", key="block", cost=2) as decision:
        assert decision.remaining == 0
    with pytest.raises(RateLimited), rate_limited(limiter, "3/minute", key="block"):
        pytest.fail("the block must not run")


def test_a_cost_above_the_burst_says_it_can_never_succeed(limiter: Limiter) -> None:
    guard = rate_limited(limiter, "3/minute", key="k", cost=4)
    with pytest.raises(RateLimited, match="can never succeed") as caught, guard:
        pass
    assert caught.value.retry_after == math.inf


def test_hooks_see_allowed_denied_and_errors(limiter: Limiter) -> None:
    seen: list[DecisionEvent] = []

    @rate_limited(limiter, "1/minute", key="k", on_decision=seen.append)
    def f() -> None:
        return None

    f()
    with pytest.raises(RateLimited):
        f()
    assert [(e.outcome, e.source) for e in seen] == [
        ("allowed", "test_hooks_see_allowed_denied_and_errors.<locals>.f"),
        ("denied", "test_hooks_see_allowed_denied_and_errors.<locals>.f"),
    ]

    down = rate_limited(Limiter(DownStore()), "1/s", key="k", on_decision=seen.append)
    with pytest.raises(StoreUnavailable), down:
        pass
    assert seen[-1].outcome == "error"
    assert isinstance(seen[-1].error, StoreUnavailable)


def test_async_functions_with_an_async_limiter(clock: FakeClock) -> None:
    async def sleep(seconds: float) -> None:
        clock.sleep(seconds)

    limiter = AsyncLimiter(clock=clock, sleep=sleep)

    @rate_limited(limiter, "1/s", key="k", wait=True)
    async def tick() -> int:
        return clock.now_ns

    @rate_limited(limiter, Limit(1, 60.0), key="other")
    async def once() -> str:
        return "once"

    async def main() -> tuple[list[int], str]:
        start = clock.now_ns
        times = [await tick() - start for _ in range(3)]
        first = await once()
        with pytest.raises(RateLimited):
            await once()
        async with rate_limited(limiter, "1/minute", key="block") as decision:
            assert decision.allowed
        with pytest.raises(RateLimited):
            async with rate_limited(limiter, "1/minute", key="block"):
                pytest.fail("the block must not run")
        return times, first

    times, first = asyncio.run(main())
    exact = [0, 1_000_000_000, 2_000_000_000]
    assert all(0 <= got - want <= 2 for got, want in zip(times, exact, strict=True)), times
    assert first == "once"


def test_an_async_function_may_use_a_sync_limiter_without_waiting(limiter: Limiter) -> None:
    @rate_limited(limiter, "1/minute", key="k")
    async def f() -> str:
        return "ok"

    assert asyncio.run(f()) == "ok"
    with pytest.raises(RateLimited):
        asyncio.run(f())


def test_combinations_that_cannot_work_are_refused(limiter: Limiter) -> None:
    async def coroutine() -> None:
        return None

    def plain() -> None:
        return None

    with pytest.raises(ConfigurationError, match="block the event loop"):
        rate_limited(limiter, "1/s", key="k", wait=True)(coroutine)
    with pytest.raises(ConfigurationError, match="only limit async"):
        rate_limited(AsyncLimiter(), "1/s", key="k")(plain)
    with (
        pytest.raises(ConfigurationError, match="key function"),
        rate_limited(limiter, "1/s", key=lambda: "k"),
    ):
        pass
    with pytest.raises(ConfigurationError, match="timeout"):
        rate_limited(limiter, "1/s", key="k", timeout=1.0)
    with pytest.raises(ConfigurationError, match="cost"):
        rate_limited(limiter, "1/s", key="k", cost=0)
    with pytest.raises(ConfigurationError, match="malformed"):
        rate_limited(limiter, "often", key="k")
    with pytest.raises(ConfigurationError, match="key must be"):
        rate_limited(limiter, "1/s", key=42)  # type: ignore[arg-type]
