"""The ASGI middleware in-process on a fake clock (the server tests are in test_asgi_server)."""

from __future__ import annotations

import asyncio
import json

import pytest

from bucketcore import AsyncLimiter, Limit, Limiter
from bucketcore.asgi import RateLimitMiddleware, by_api_key, by_ip, by_user, rule
from bucketcore.errors import ConfigurationError, StoreClosed
from bucketcore.hooks import DecisionEvent
from tests.asgi_driver import basic, call, hello, lifespan
from tests.conftest import FakeClock
from tests.stores import DegradedStore, DownStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def demo(clock: FakeClock, **options: object) -> RateLimitMiddleware:
    rules = [
        rule("/pizza", "7/30s", name="general", key=by_user),
        rule("/pasta", "7/30s", name="general", key=by_user),
        rule("/icecream", "1/10s", name="special", key=by_user),
        rule("/healthz"),
        rule("/api/*", "2/minute", name="api", key=by_api_key),
        rule("/upload", "3/minute", methods=["POST"], cost=3),
    ]
    limiter = AsyncLimiter(clock=clock)
    return RateLimitMiddleware(hello, limiter=limiter, rules=rules, **options)  # type: ignore[arg-type]


def statuses(app: RateLimitMiddleware, paths: list[str], user: str = "alice") -> list[int]:
    return [call(app, path, headers=[basic(user)]).status for path in paths]


def test_a_shared_pool_and_a_separate_one(clock: FakeClock) -> None:
    app = demo(clock)
    assert statuses(app, ["/pizza", "/pasta"] * 4) == [200] * 7 + [429]
    assert statuses(app, ["/icecream", "/icecream"]) == [200, 429]
    assert statuses(app, ["/pizza"], user="bob") == [200]


def test_allowed_responses_keep_the_app_headers_and_gain_the_limit_ones(clock: FakeClock) -> None:
    reply = call(demo(clock), "/pizza", headers=[basic("alice")])
    assert reply.status == 200
    assert reply.body == b"hello /pizza"
    assert reply.headers["x-app"] == "yes"
    assert reply.headers["ratelimit-policy"] == '"general";q=7;w=30'
    assert reply.headers["ratelimit"] == '"general";r=6;t=5'
    assert reply.headers["x-ratelimit-remaining"] == "6"
    assert "retry-after" not in reply.headers


def test_a_denial_is_429_json_with_retry_after_which_is_honoured(clock: FakeClock) -> None:
    app = demo(clock)
    statuses(app, ["/pizza"] * 7)
    reply = call(app, "/pasta", headers=[basic("alice")])
    assert reply.status == 429
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["content-length"] == str(len(reply.body))
    assert reply.headers["retry-after"] == "5"
    assert json.loads(reply.body) == {"error": "rate_limited", "limit": "general", "retry_after": 5}
    clock.advance(4)
    assert statuses(app, ["/pasta"]) == [429]
    clock.advance(1)
    assert statuses(app, ["/pasta", "/pasta"]) == [200, 429]


def test_unnamed_requests_fall_back_to_the_ip(clock: FakeClock) -> None:
    app = demo(clock)
    assert [call(app, "/icecream").status for _ in range(2)] == [200, 429]
    assert call(app, "/icecream", client="127.0.0.12").status == 200
    assert statuses(app, ["/icecream"]) == [200]


def test_exempt_paths_and_unmatched_paths_without_a_default(clock: FakeClock) -> None:
    app = demo(clock)
    for _ in range(30):
        reply = call(app, "/healthz")
        assert reply.status == 200
        assert "ratelimit" not in reply.headers
    assert call(app, "/elsewhere").status == 200
    assert "ratelimit" not in call(app, "/elsewhere").headers


def test_a_default_limit_covers_what_no_rule_matches(clock: FakeClock) -> None:
    app = demo(clock, default="2/minute", default_name="rest")
    assert [call(app, p).status for p in ["/a", "/b", "/c"]] == [200, 200, 429]
    assert call(app, "/healthz").status == 200
    assert call(app, "/a", client="127.0.0.99").headers["ratelimit-policy"] == '"rest";q=2;w=60'


def test_prefix_rules_and_api_keys(clock: FakeClock) -> None:
    app = demo(clock)
    key_a = [(b"x-api-key", b"key-a")]
    got = [call(app, p, headers=key_a).status for p in ["/api/x", "/api/y", "/api/z"]]
    assert got == [200, 200, 429]
    assert call(app, "/api/x", headers=[(b"x-api-key", b"key-b")]).status == 200


def test_methods_and_cost(clock: FakeClock) -> None:
    app = demo(clock)
    assert call(app, "/upload", method="POST").status == 200
    assert call(app, "/upload", method="POST").status == 429
    assert call(app, "/upload", method="GET").status == 200  # the rule is for POST only


def test_websockets_and_lifespan_pass_through(clock: FakeClock) -> None:
    app = demo(clock, default="1/hour")
    for _ in range(3):
        reply = call(app, "/pizza", scope_type="websocket")
        assert reply.messages == [{"type": "websocket.accept"}]


def test_a_down_store_is_503_or_passes(clock: FakeClock) -> None:
    seen: list[DecisionEvent] = []

    def down(**options: object) -> RateLimitMiddleware:
        limiter = AsyncLimiter(DownStore())
        return RateLimitMiddleware(hello, limiter=limiter, default="1/s", **options)  # type: ignore[arg-type]

    reply = call(down(on_decision=seen.append), "/x")
    assert reply.status == 503
    assert reply.headers["retry-after"] == "1"
    assert json.loads(reply.body)["error"] == "rate_limiter_unavailable"
    passed = down(on_store_error="pass", on_decision=seen.append)
    assert [call(passed, "/x").status for _ in range(3)] == [200, 200, 200]
    assert [event.outcome for event in seen] == ["error"] * 4


def test_hooks_see_allowed_denied_and_degraded(clock: FakeClock) -> None:
    seen: list[tuple[str, str, str]] = []

    def hook(event: DecisionEvent) -> None:
        seen.append((event.outcome, event.source, event.limit_name))

    app = demo(clock, on_decision=hook)
    statuses(app, ["/icecream", "/icecream"])
    degraded = RateLimitMiddleware(
        hello, limiter=AsyncLimiter(DegradedStore()), default="1/s", on_decision=hook
    )
    assert call(degraded, "/d").status == 200
    assert seen == [
        ("allowed", "/icecream", "special"),
        ("denied", "/icecream", "special"),
        ("degraded", "/d", "default"),
    ]


def test_the_limiter_comes_from_bucketcore_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUCKETCORE_URL", "nosuch://x")
    app = RateLimitMiddleware(hello, default="1/s")
    with pytest.raises(ConfigurationError, match="unknown store URL scheme"):
        call(app, "/")


def test_bad_configuration_is_refused_at_once() -> None:
    conflict = "pool 'general' is 8/30s at rule '/b' but 7/30s at rule '/a'"
    with pytest.raises(ConfigurationError, match=conflict):
        RateLimitMiddleware(
            hello, rules=[rule("/a", "7/30s", name="general"), rule("/b", "8/30s", name="general")]
        )
    with pytest.raises(ConfigurationError, match="AsyncLimiter"):
        RateLimitMiddleware(hello, limiter=Limiter())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="starts with '/'"):
        rule("pizza", "1/s")
    with pytest.raises(ConfigurationError, match="no limit"):
        rule("/pizza", name="general")
    with pytest.raises(ConfigurationError, match="malformed"):
        rule("/pizza", "lots")
    with pytest.raises(ConfigurationError, match="rule"):
        RateLimitMiddleware(hello, rules=["/pizza"])  # type: ignore[list-item]
    assert by_ip({"client": None}) == "ip:unknown"


def test_a_limiter_it_opened_is_closed_at_shutdown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUCKETCORE_URL", "memory://")
    app = RateLimitMiddleware(hello, default="1/s")
    assert call(app, "/").status == 200
    opened = app.limiter
    types = [m["type"] for m in lifespan(app)]
    assert types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    with pytest.raises(StoreClosed):
        asyncio.run(opened.acquire("k", Limit(1, 1)))


def test_a_limiter_it_was_given_is_left_open(clock: FakeClock) -> None:
    given = AsyncLimiter(clock=clock)
    app = RateLimitMiddleware(hello, limiter=given, default="1/s")
    lifespan(app)
    assert asyncio.run(given.acquire("k", Limit(1, 1))).allowed
