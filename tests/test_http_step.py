"""The one HTTP decision step (bucketcore.integrations.http, docs/design.md §5).

``verdict`` is pure: these tests give it decisions and store errors made by
hand and read what it says to do. ``decide`` and ``decide_async`` are the
same step behind a Limiter and an AsyncLimiter, on a fake clock.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest

from bucketcore import AsyncLimiter, Decision, Limit, Limiter
from bucketcore.errors import StoreUnavailable
from bucketcore.integrations.hooks import DecisionEvent
from bucketcore.integrations.http import (
    Check,
    OnStoreError,
    Verdict,
    decide,
    decide_async,
    denied_body,
    unavailable_body,
    verdict,
)
from tests.conftest import FakeClock
from tests.stores import DegradedStore, DownStore

GENERAL = Limit(7, 30, name="general")
CHECK = Check("user:alice", (GENERAL,), source="/pizza")
ALLOWED = Decision(True, 6, 0.0, 30 / 7, GENERAL)
DENIED = Decision(False, 0, 3.2, 30.0, GENERAL)
DEGRADED = Decision(True, 0, 0.0, 0.0, GENERAL, degraded=True)
DOWN = StoreUnavailable("redis://127.0.0.1:1 did not answer")


def test_an_allowed_decision_goes_on_with_its_headers() -> None:
    result = verdict(CHECK, ALLOWED)
    assert result.answer is None
    assert result.headers == ALLOWED.headers()
    assert result.headers["RateLimit"] == '"general";r=6;t=5'
    assert result.decision is ALLOWED
    assert result.event == DecisionEvent(
        "user:alice", (GENERAL,), "allowed", ALLOWED, None, "/pizza"
    )


def test_a_denied_decision_is_a_429_with_retry_after_and_a_json_body() -> None:
    result = verdict(CHECK, DENIED)
    assert result.event.outcome == "denied"
    assert result.answer is not None
    assert result.answer.status == 429
    assert result.answer.headers == {"Content-Type": "application/json", **DENIED.headers()}
    assert result.answer.headers["Retry-After"] == "4"
    assert result.answer.body == denied_body(DENIED)
    assert json.loads(result.answer.body) == {
        "error": "rate_limited",
        "limit": "general",
        "retry_after": 4,
    }


def test_a_degraded_decision_is_reported_as_degraded_and_obeyed() -> None:
    result = verdict(CHECK, DEGRADED)
    assert result.event.outcome == "degraded"
    assert result.answer is None
    denied_degraded = replace(DEGRADED, allowed=False, retry_after=1.0)
    assert verdict(CHECK, denied_degraded).answer is not None


@pytest.mark.parametrize(
    ("policy", "status"),
    [("503", 503), ("pass", None), ("raise", None)],
)
def test_a_store_error_follows_the_policy(policy: OnStoreError, status: int | None) -> None:
    result = verdict(replace(CHECK, on_store_error=policy), DOWN)
    assert result.event == DecisionEvent("user:alice", (GENERAL,), "error", None, DOWN, "/pizza")
    assert result.decision is None
    assert result.headers == {}  # nothing was decided: no rate-limit headers
    assert (result.answer and result.answer.status) == status
    if result.answer is not None:
        assert result.answer.headers == {"Content-Type": "application/json", "Retry-After": "1"}
        assert result.answer.body == unavailable_body()


@pytest.fixture
def limiter(clock: FakeClock) -> Limiter:
    return Limiter(clock=clock, sleep=clock.sleep)


def test_decide_takes_the_cost_and_tells_every_hook_once(limiter: Limiter) -> None:
    first: list[DecisionEvent] = []
    second: list[DecisionEvent] = []
    check = Check("k", (Limit(3, 60),), cost=2, source="f", hooks=(first.append, second.append))
    verdicts = [decide(limiter, check), decide(limiter, check)]
    assert [v.answer is None for v in verdicts] == [True, False]
    assert [e.outcome for e in first] == ["allowed", "denied"]
    assert second == first
    assert first[0].decision is not None
    assert first[0].decision.remaining == 1


def _down_verdict(policy: OnStoreError, seen: list[DecisionEvent]) -> Verdict:
    check = replace(CHECK, on_store_error=policy, hooks=(seen.append,))
    return decide(Limiter(DownStore()), check)


def test_decide_tells_the_hooks_of_a_store_error_and_raises_it_only_under_raise() -> None:
    seen: list[DecisionEvent] = []
    assert _down_verdict("pass", seen).answer is None
    answer = _down_verdict("503", seen).answer
    assert answer is not None
    assert answer.status == 503
    with pytest.raises(StoreUnavailable) as caught:
        _down_verdict("raise", seen)
    assert [e.outcome for e in seen] == ["error"] * 3
    assert seen[-1].error is caught.value  # the store's own exception, not a copy


def test_wait_waits_for_the_tokens_until_the_timeout(limiter: Limiter, clock: FakeClock) -> None:
    check = Check("k", (Limit(1, 2),), wait=True, timeout=5.0)
    start = clock.now_ns
    assert decide(limiter, check).answer is None
    assert decide(limiter, check).answer is None
    assert clock.now_ns - start >= 2_000_000_000  # the second one waited a full token
    short = replace(check, timeout=0.5)
    result = decide(limiter, short)
    assert result.answer is not None
    assert result.answer.status == 429


def test_decide_async_says_what_decide_says(clock: FakeClock) -> None:
    seen: list[DecisionEvent] = []
    check = Check("k", (Limit(2, 60, name="pool"),), source="/x", hooks=(seen.append,))
    sync_limiter = Limiter(clock=clock)
    sync = [decide(sync_limiter, check) for _ in range(3)]

    async def run() -> list[Verdict]:
        async_limiter = AsyncLimiter(clock=clock)
        return [await decide_async(async_limiter, check) for _ in range(3)]

    asynchronous = asyncio.run(run())
    assert asynchronous == sync
    assert [v.event.outcome for v in asynchronous] == ["allowed", "allowed", "denied"]
    assert len(seen) == 6

    async def degraded_and_down() -> list[Verdict]:
        return [
            await decide_async(AsyncLimiter(DegradedStore()), check),  # type: ignore[arg-type]
            await decide_async(AsyncLimiter(DownStore()), check),  # type: ignore[arg-type]
        ]

    outcomes = [v.event.outcome for v in asyncio.run(degraded_and_down())]
    assert outcomes == ["degraded", "error"]
