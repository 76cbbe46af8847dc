"""The public surface: exports, URLs, options, headers, errors."""

from __future__ import annotations

import math
import types

import pytest

import bucketcore
from bucketcore import AsyncLimiter, Decision, Limit, Limiter, errors
from bucketcore.errors import ConfigurationError, StoreClosed
from bucketcore.memory import MemoryStore
from bucketcore.store import SCHEMES, Store
from tests.conftest import FakeClock


def test_all_lists_exactly_the_public_names_sorted() -> None:
    # Submodules (bucketcore.flask, .asgi, ...) appear once anything imports them.
    public = {
        name
        for name, value in vars(bucketcore).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    public -= {"annotations"}
    assert sorted(bucketcore.__all__) == bucketcore.__all__
    assert set(bucketcore.__all__) == public
    assert sorted(errors.__all__) == errors.__all__


def test_error_hierarchy_is_as_documented() -> None:
    assert issubclass(errors.ConfigurationError, errors.BucketError)
    assert issubclass(errors.ConfigurationError, ValueError)
    for error in (errors.StoreUnavailable, errors.StoreLocked, errors.CorruptState):
        assert issubclass(error, errors.StoreError)
    assert issubclass(errors.StoreError, errors.BucketError)


@pytest.mark.parametrize(
    "url",
    ["mem://", "http://localhost", "memory://host", "memory:///path", "memory://?fast=1", "", "x"],
)
def test_bad_urls_and_options_raise(url: str) -> None:
    with pytest.raises(ConfigurationError):
        Limiter(url)


def test_unknown_keyword_options_raise() -> None:
    with pytest.raises(ConfigurationError, match="turbo"):
        Limiter("memory://", turbo=True)


def test_a_store_object_takes_no_limiter_options() -> None:
    with pytest.raises(ConfigurationError):
        Limiter(MemoryStore(), clock=FakeClock())
    with pytest.raises(ConfigurationError):
        Limiter(42)  # type: ignore[arg-type]


def test_from_url_and_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert type(Limiter.from_url("memory://").store) is MemoryStore
    monkeypatch.setenv("BUCKETCORE_URL", "nope://")
    with pytest.raises(ConfigurationError, match="nope"):
        Limiter.from_env()
    monkeypatch.delenv("BUCKETCORE_URL")
    assert type(Limiter.from_env().store) is MemoryStore


def test_every_scheme_names_a_module_with_open_store() -> None:
    import importlib

    for module_name, _extra in SCHEMES.values():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue  # the backend lands with its own issue
        assert callable(module.open_store)


def test_the_memory_store_keeps_the_store_protocol() -> None:
    assert isinstance(MemoryStore(), Store)


def test_a_name_reused_with_another_rate_is_a_plan_change(clock: FakeClock) -> None:
    limiter = Limiter(clock=clock)
    assert limiter.acquire("k", Limit(7, 30.0, name="general")).remaining == 6
    assert limiter.acquire("k", Limit(10, 30.0, name="general")).remaining == 5


def test_headers_follow_the_draft_and_the_legacy_names(clock: FakeClock) -> None:
    limiter = Limiter(clock=clock)
    limit = Limit(7, 30.0, name="general")
    allowed = limiter.acquire("alice", limit, cost=7)
    assert allowed.headers() == {
        "RateLimit-Policy": '"general";q=7;w=30',
        "RateLimit": '"general";r=0;t=30',
        "X-RateLimit-Limit": "7",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "30",
    }
    denied = limiter.acquire("alice", limit)
    assert denied.headers()["Retry-After"] == "5"  # 30/7 = 4.29 s, rounded up
    clock.advance(30 / 7)
    assert limiter.acquire("alice", limit).allowed  # waiting retry_after was enough


def test_headers_scale_a_fractional_period_to_whole_seconds() -> None:
    decision = Limiter(clock=FakeClock()).acquire("k", Limit.parse("5/0.5s"))
    assert decision.headers()["RateLimit-Policy"] == '"5/0.5s";q=10;w=1'


def test_decisions_are_frozen_and_truthy_when_allowed() -> None:
    decision = Limiter().acquire("k", Limit(1, 1.0))
    assert bool(decision) is True
    assert isinstance(decision, Decision)
    with pytest.raises(AttributeError):
        decision.allowed = False  # type: ignore[misc]
    assert Decision(False, 0, math.inf, 0.0, Limit(1, 1.0)).headers().get("Retry-After") is None


def test_bytes_keys_that_are_not_utf8_work() -> None:
    limiter = Limiter()
    assert limiter.acquire(b"\xff\xfe", Limit(1, 60.0))
    assert not limiter.acquire(b"\xff\xfe", Limit(1, 60.0))


def test_the_async_limiter_refuses_calls_after_close() -> None:
    import asyncio

    async def scenario() -> None:
        async with AsyncLimiter() as limiter:
            assert await limiter.try_acquire("k", Limit(1, 60.0))
            assert (await limiter.peek("k", Limit(1, 60.0))).allowed is False
            await limiter.refund("k", Limit(1, 60.0))
            await limiter.reset("k", Limit(1, 60.0))
            assert [d.allowed for d in await limiter.acquire_many([("k", Limit(1, 60.0), 1)])]
        with pytest.raises(StoreClosed):
            await limiter.acquire("k", Limit(1, 60.0))

    asyncio.run(scenario())


@pytest.mark.parametrize("call", ["acquire", "try_acquire", "peek"])
def test_after_the_clock_steps_back_the_reported_wait_comes_true(call: str) -> None:
    clock = FakeClock()
    limiter = Limiter(clock=clock)
    per_second = Limit(1, 1.0)
    assert limiter.acquire("k", per_second)
    clock.advance(-5.0)
    assert not getattr(limiter, call)("k", per_second)
    denied = limiter.acquire("k", per_second)
    assert denied.remaining == 0
    assert denied.retry_after <= 1.0 + 1e-6
    clock.advance(denied.retry_after)
    assert limiter.acquire("k", per_second).allowed


def test_the_binding_limit_on_a_tie_is_the_one_that_takes_longest_to_refill() -> None:
    limiter = Limiter(clock=FakeClock())
    quick, slow = Limit(2, 1.0), Limit(2, 60.0)
    decision = limiter.acquire("k", quick, slow)
    assert decision.remaining == 1
    assert decision.limit == slow


def test_a_missing_backend_module_is_not_blamed_on_an_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A broken install (no bucketcore.backends) used to say "pip install the
    # extra", which cannot help: the real ImportError must reach the user.
    from bucketcore import store

    monkeypatch.setitem(store.SCHEMES, "gone", ("bucketcore.backends.not_here", "redis"))
    with pytest.raises(ModuleNotFoundError, match=r"bucketcore\.backends\.not_here"):
        store.open_store("gone://host")
