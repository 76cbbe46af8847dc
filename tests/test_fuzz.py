"""Bad input of every shape gets a bucketcore.errors exception, never a bare one.

docs/design.md §3: numbers out of range, NaN, infinities, huge integers,
wrong types, malformed specs and URLs, unknown schemes or options. The only
exceptions that may escape the public API are ``BucketError`` subclasses
(``ConfigurationError`` is also a ``ValueError``); nothing may be charged and
then fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bucketcore import AsyncLimiter, Limit, Limiter
from bucketcore.errors import BucketError
from tests.conftest import CONTRACT_BACKENDS

FUZZED_BACKENDS = ["memory", "memory-python", "rocksdb", "lmdb", "redis"]

NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=10**18, max_value=10**60),
    st.just(10**5000),
    st.just(-(10**5000)),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([True, False, None, 0, -1, 1e300, -0.0, math.nan, math.inf, "1", "²", b"1"]),
)
TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "1", "10/s", "7/30s", "5/month", "1/0s", "1e9/s", "9" * 5000]),
    st.sampled_from(["10/s burst", "10 per", "٣/s", "10/ s", "10/second burst 99999999999999"]),
)
ANYTHING = st.one_of(NUMBERS, TEXT, st.binary(max_size=20), st.lists(st.integers(), max_size=3))


def _only_bucket_errors(action: object, *args: object, **kwargs: object) -> object:
    try:
        return action(*args, **kwargs)  # type: ignore[operator]
    except BucketError:
        return None


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(tokens=ANYTHING, period=ANYTHING, burst=st.one_of(st.none(), ANYTHING), name=ANYTHING)
def test_making_a_limit(tokens: object, period: object, burst: object, name: object) -> None:
    _only_bucket_errors(Limit, tokens, period, burst=burst, name=name)


@FUZZ
@given(spec=ANYTHING)
def test_parsing_specs(spec: object) -> None:
    _only_bucket_errors(Limit.parse, spec)
    _only_bucket_errors(Limit.parse_many, spec)


URL_PARTS = st.sampled_from(
    [
        "memory://",
        "memory:///x",
        "redis://",
        "redis://[::1/0",
        "redis://h:99999/0",
        "redis://h/abc",
        "redis://h/0/1",
        "redis://:pw@h/0?timeout=nan",
        "redis://h/0?timeout=-1",
        "redis://h/0?max_connections=²",
        "redis://h/0?on_error=maybe",
        "redis://h/0?prefix={x}",
        "rediss://h/0?ssl_cert_reqs=sometimes",
        "redis+cluster://",
        "unix://",
        "rocksdb://",
        "rocksdb:///dev/null/x?durability=never",
        "rocksdb:///tmp/x?lock_timeout=nan",
        "lmdb://",
        "lmdb:///tmp/x?map_size=-5",
        "lmdb:///tmp/x?flush_interval=inf&durability=periodic",
        "memcached://h",
        "://",
        "",
        "redis://h/0\x00",
        "http://example.com/",
    ]
)


@FUZZ
@given(
    url=st.one_of(URL_PARTS, st.text(max_size=30), ANYTHING),
    options=st.dictionaries(
        st.sampled_from(["timeout", "prefix", "durability", "map_size", "flush_interval", "x"]),
        ANYTHING,
        max_size=2,
    ),
)
def test_opening_stores_by_url(url: object, options: dict[str, object]) -> None:
    limiter = _only_bucket_errors(Limiter, url, **options)
    if isinstance(limiter, Limiter):
        limiter.close()


@pytest.fixture(params=FUZZED_BACKENDS)
def fuzzed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Limiter]:
    limiter = CONTRACT_BACKENDS[request.param](request, tmp_path)
    yield limiter
    limiter.close()


ONE = Limit(1000, 1.0)


@FUZZ
@given(key=ANYTHING, cost=ANYTHING, timeout=st.one_of(st.none(), NUMBERS))
def test_calls_with_bad_keys_costs_and_timeouts(
    fuzzed: Limiter, key: object, cost: object, timeout: object
) -> None:
    for method in (fuzzed.acquire, fuzzed.try_acquire, fuzzed.peek):
        _only_bucket_errors(method, key, ONE, cost=cost)
    _only_bucket_errors(fuzzed.refund, key, ONE, tokens=cost)
    _only_bucket_errors(fuzzed.reset, key, ONE)
    _only_bucket_errors(fuzzed.wait, key, ONE, cost=1, timeout=timeout)


@FUZZ
@given(
    requests=st.one_of(
        ANYTHING,
        st.lists(st.one_of(ANYTHING, st.tuples(ANYTHING, ANYTHING, ANYTHING)), max_size=3),
        st.lists(st.tuples(st.just("k"), st.one_of(ANYTHING, st.just(ONE)), NUMBERS), max_size=3),
    )
)
def test_acquire_many_with_malformed_requests(fuzzed: Limiter, requests: object) -> None:
    before = fuzzed.peek("k", ONE).remaining
    if _only_bucket_errors(fuzzed.acquire_many, requests) is None:
        assert fuzzed.peek("k", ONE).remaining >= before  # refused means nothing charged


@FUZZ
@given(key=ANYTHING, cost=ANYTHING)
def test_async_calls_with_bad_input(key: object, cost: object) -> None:
    async def main() -> None:
        async with AsyncLimiter() as limiter:
            for method in (limiter.acquire, limiter.try_acquire, limiter.peek):
                with contextlib.suppress(BucketError):
                    await method(key, ONE, cost=cost)  # type: ignore[arg-type]

    asyncio.run(main())
