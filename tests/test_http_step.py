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
from bucketcore.errors import ConfigurationError, StoreUnavailable
from bucketcore.integrations.hooks import DecisionEvent
from bucketcore.integrations.http import (
    Answer,
    CallbackError,
    Check,
    OnStoreError,
    Options,
    Policy,
    PoolRegistry,
    RequestVerdict,
    Verdict,
    check_cost_fits,
    decide,
    decide_async,
    decide_request,
    decide_request_async,
    denied_body,
    limiting_disabled,
    limits_from,
    methods_from,
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


# ---- decide_request: policies resolved per request (docs/design.md §5) ----

Request = dict[str, str]
PLANS = {"free": "2/minute", "pro": "10/minute"}


def by_user(request: Request) -> str | None:
    return request.get("user")


def plan_of(request: Request) -> str:
    return PLANS[request["plan"]]


OPTIONS: Options[Request] = Options(key=by_user, fallback=lambda request: "ip:10.0.0.1")


def statuses(
    limiter: Limiter, policies: list[Policy[Request]], request: Request, n: int
) -> list[int]:
    answers = [decide_request(limiter, policies, request, OPTIONS).answer for _ in range(n)]
    return [200 if answer is None else answer.status for answer in answers]


def test_a_plan_decided_from_the_request_sets_the_limit(limiter: Limiter) -> None:
    policies = [Policy(plan_of, name="api")]
    assert statuses(limiter, policies, {"user": "ann", "plan": "free"}, 3) == [200, 200, 429]
    assert statuses(limiter, policies, {"user": "bob", "plan": "pro"}, 11) == [200] * 10 + [429]
    pro = decide_request(limiter, policies, {"user": "cy", "plan": "pro"}, OPTIONS)
    assert pro.headers["RateLimit-Policy"] == '"api:10/60s";q=10;w=60'
    # Ann upgrades: her pro bucket is not her free one, so she is not held to 2/min.
    assert statuses(limiter, policies, {"user": "ann", "plan": "pro"}, 3) == [200] * 3


def test_a_plan_may_be_a_limit_or_a_list_and_a_bad_one_names_the_function(
    limiter: Limiter,
) -> None:
    two = [Limit(5, 1), Limit(100, 3600)]
    result = decide_request(limiter, [Policy(lambda r: two)], {"user": "a"}, OPTIONS)
    assert result.headers["RateLimit-Policy"] == '"5/1s";q=5;w=1, "100/3600s";q=100;w=3600'

    def broken_plan(request: Request) -> object:
        return 7

    with pytest.raises(CallbackError, match=r"limit function .*broken_plan returned 7"):
        decide_request(limiter, [Policy(broken_plan)], {"user": "a"}, OPTIONS)  # type: ignore[arg-type]
    with pytest.raises(CallbackError, match=r"cost 3 is above the burst 2 .*plan_of"):
        decide_request(limiter, [Policy(plan_of, cost=3)], {"user": "a", "plan": "free"}, OPTIONS)


def test_key_function_errors_name_the_function(limiter: Limiter) -> None:
    def by_tenant(request: Request) -> str:
        return request["tenant"]

    def by_number(request: Request) -> int:
        return 42

    policy = Policy[Request]("1/s")
    with pytest.raises(CallbackError, match=r"key function .*by_tenant raised KeyError") as raised:
        decide_request(limiter, [policy], {}, replace(OPTIONS, key=by_tenant))
    assert isinstance(raised.value.__cause__, KeyError)
    with pytest.raises(ConfigurationError, match=r"by_number returned 42 \(int\)"):
        decide_request(limiter, [policy], {}, replace(OPTIONS, key=by_number))  # type: ignore[arg-type]
    with pytest.raises(CallbackError, match="by_user returned None"):
        decide_request(limiter, [policy], {}, replace(OPTIONS, fallback=None))
    # No user: the fallback (the address) names the client, so leaving it out is no way around.
    assert decide_request(limiter, [policy], {}, OPTIONS).verdicts[0].event.key == "ip:10.0.0.1"


def test_every_policy_is_listed_and_a_later_denial_gives_back_earlier_tokens(
    limiter: Limiter,
) -> None:
    burst = Policy[Request]("5/minute", name="burst")
    hourly = Policy[Request]("2/hour; 100/day", name="hourly")
    ann = {"user": "ann"}
    first = decide_request(limiter, [burst, hourly], ann, OPTIONS)
    assert first.headers["RateLimit-Policy"] == (
        '"burst";q=5;w=60, "hourly:2/3600s";q=2;w=3600, "hourly:100/86400s";q=100;w=86400'
    )
    assert first.headers["RateLimit"] == '"burst";r=4;t=12, "hourly:2/3600s";r=1;t=1800'
    assert first.headers["X-RateLimit-Remaining"] == "1"  # the binding one
    assert "Retry-After" not in first.headers
    decide_request(limiter, [burst, hourly], ann, OPTIONS)
    denied = decide_request(limiter, [burst, hourly], ann, OPTIONS)
    assert denied.answer is not None
    assert denied.answer.status == 429
    assert denied.answer.headers["RateLimit"].startswith('"hourly:2/3600s";r=0')
    # The denied request took nothing from "burst": 2 of its 5 are used, not 3,
    # so one more would leave 2.
    assert limiter.peek("ann", *burst.limits or ()).remaining == 2


def test_shadow_mode_reports_a_denial_but_never_answers(limiter: Limiter) -> None:
    seen: list[DecisionEvent] = []
    shadow = replace(OPTIONS, shadow=True, hooks=seen.append, on_store_error="503")
    policies = [Policy[Request]("1/minute")]
    results = [decide_request(limiter, policies, {"user": "a"}, shadow) for _ in range(2)]
    assert [r.answer for r in results] == [None, None]
    assert results[1].headers["RateLimit"] == '"1/60s";r=0;t=60'
    assert "Retry-After" not in results[1].headers
    assert [(e.outcome, e.shadow) for e in seen] == [("allowed", True), ("denied", True)]
    down = decide_request(Limiter(DownStore()), policies, {"user": "a"}, shadow)
    assert down.answer is None  # not even a 503
    assert seen[-1].outcome == "error"


def test_one_switch_turns_limiting_off(limiter: Limiter, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[DecisionEvent] = []
    options = replace(OPTIONS, hooks=seen.append)
    policies = [Policy[Request]("1/hour")]
    off = replace(options, enabled=False)
    assert statuses(limiter, policies, {"user": "a"}, 1) == [200]
    assert decide_request(limiter, policies, {"user": "a"}, off) == RequestVerdict(None, {})
    with limiting_disabled():
        assert decide_request(limiter, policies, {"user": "a"}, options).answer is None
    monkeypatch.setenv("BUCKETCORE_DISABLED", "1")
    assert decide_request(limiter, policies, {"user": "a"}, options).answer is None
    assert seen == []  # nothing decided, nothing reported
    monkeypatch.setenv("BUCKETCORE_DISABLED", "maybe")
    with pytest.raises(ConfigurationError, match="BUCKETCORE_DISABLED"):
        decide_request(limiter, policies, {"user": "a"}, options)
    monkeypatch.setenv("BUCKETCORE_DISABLED", "0")
    assert statuses(limiter, policies, {"user": "a"}, 1) == [429]


def test_on_denied_builds_the_answer_and_keeps_the_rate_limit_headers(limiter: Limiter) -> None:
    def page(decision: Decision) -> Answer:
        return Answer(429, {"Content-Type": "text/html"}, b"<p>slow down</p>")

    options = replace(OPTIONS, on_denied=page)
    policies = [Policy[Request]("1/minute")]
    decide_request(limiter, policies, {"user": "a"}, options)
    answer = decide_request(limiter, policies, {"user": "a"}, options).answer
    assert answer is not None
    assert (answer.status, answer.body) == (429, b"<p>slow down</p>")
    assert answer.headers["Content-Type"] == "text/html"
    assert answer.headers["Retry-After"] == "60"

    def lets_through(decision: Decision) -> Answer:
        return Answer(200, {}, b"fine")

    with pytest.raises(CallbackError, match=r"lets_through returned .*status of 400"):
        decide_request(limiter, policies, {"user": "a"}, replace(OPTIONS, on_denied=lets_through))


def test_decide_request_async_says_what_decide_request_says(clock: FakeClock) -> None:
    policies = [Policy(plan_of, name="api"), Policy[Request]("1/hour", name="hourly")]
    request = {"user": "ann", "plan": "free"}
    sync_limiter = Limiter(clock=clock)
    sync = [decide_request(sync_limiter, policies, request, OPTIONS) for _ in range(3)]

    async def run() -> list[RequestVerdict]:
        limiter = AsyncLimiter(clock=clock)
        return [await decide_request_async(limiter, policies, request, OPTIONS) for _ in range(3)]

    asynchronous = asyncio.run(run())
    assert asynchronous == sync
    assert [r.answer is None for r in asynchronous] == [True, False, False]


# ---- start-up validation helpers ----


def test_a_cost_above_a_burst_is_refused_when_the_policy_is_made() -> None:
    with pytest.raises(ConfigurationError, match="cost 6 is above the burst 5"):
        Policy("5/s", cost=6)
    with pytest.raises(ConfigurationError, match="cost 2 is above the burst 1 of 'x:1/60s'"):
        check_cost_fits(limits_from("10/s; 1/minute", name="x")[1:], 2)
    assert Policy("5/s", cost=5).cost == 5


@pytest.mark.parametrize("bad", [list("POST"), "P", "", [], ["GET", 1], "GET, POTS"])
def test_methods_are_validated(bad: object) -> None:
    with pytest.raises(ConfigurationError):
        methods_from(bad)  # type: ignore[arg-type]


def test_methods_take_a_string_or_names() -> None:
    assert methods_from("POST") == {"POST"}
    assert methods_from("get, Post") == {"GET", "POST"}
    assert methods_from(("put", "PATCH")) == {"PUT", "PATCH"}
    assert methods_from(None) is None


def test_a_pool_conflict_says_where_both_are() -> None:
    pools = PoolRegistry()
    pools.register(limits_from("7/30s", name="general"), "at view pizza")
    pools.register(limits_from("7/30s", name="general"), "at view pasta")  # the same: fine
    with pytest.raises(ConfigurationError, match="8/30s at view icecream but 7/30s at view pizza"):
        pools.register(limits_from("8/30s", name="general"), "at view icecream")
