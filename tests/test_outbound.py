"""Outbound pacing without a network: the pure step, and the transports over mocks.

The real server tests (rates, Retry-After, two hosts) are in
tests/test_outbound_server.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import httpx
import pytest

from bucketcore import AsyncLimiter, Limit, Limiter
from bucketcore.errors import ConfigurationError, RateLimited
from bucketcore.httpx import AsyncRateLimitedTransport, RateLimitedTransport, request_origin
from bucketcore.integrations.outbound import (
    MAX_RETRY_AFTER,
    Charge,
    Drain,
    Pacing,
    origin,
    retry_after_seconds,
)
from tests.conftest import FakeClock

NOON = 1_700_000_000.0  # a wall-clock instant for HTTP dates: Tue, 14 Nov 2023 22:13:20 GMT


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2", 2.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("Tue, 14 Nov 2023 22:13:50 GMT", 30.0),
        ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),  # in the past: go now
        ("99999999999999999999", MAX_RETRY_AFTER),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("Tue, 14 Nov 2023 22:13:50 -0000", None),  # not GMT: not an HTTP date
        ("\u0662", None),  # a digit, but not ASCII
        (None, None),
    ],
)
def test_retry_after_is_delay_seconds_or_an_http_date(
    value: str | None, seconds: float | None
) -> None:
    assert retry_after_seconds(value, now=NOON) == seconds


def test_the_default_bucket_is_the_origin() -> None:
    assert origin("http", "example.com", None) == "http://example.com:80"
    assert origin("https", "Example.COM", 8443) == "https://example.com:8443"
    assert origin("https", "::1", None) == "https://[::1]:443"
    request = httpx.Request("GET", "https://api.example.com/a?b=c")
    assert request_origin(request) == request_origin(
        httpx.Request("POST", "https://api.example.com:443/z")
    )
    assert request_origin(request) != request_origin(
        httpx.Request("GET", "http://api.example.com/a")
    )


def test_a_limit_with_a_burst_is_kept_one_token_short() -> None:
    pacing = Pacing("10/s; 1000/day; 1/s burst 1")
    assert [limit.burst for limit in pacing.limits] == [9, 999, 1]
    assert [limit.tokens for limit in pacing.limits] == [10, 1000, 1]
    assert Pacing(Limit(5, 1, name="api")).limits[0].name == "api"


def test_a_429_or_503_with_retry_after_drains_every_limit() -> None:
    pacing = Pacing("10/s; 1000/day")
    for status in (429, 503):
        assert pacing.after("k", 0, 1_000_000, status, "7") == [Drain(pacing.limits, 7.0)]
    assert pacing.after("k", 0, 1_000_000, 429, None) == []
    assert pacing.after("k", 0, 1_000_000, 429, "whenever") == []
    assert pacing.after("k", 0, 1_000_000, 500, "7") == []
    assert pacing.after("k", 0, 1_000_000, 200, "7") == []


def test_a_burst_of_one_counts_its_interval_from_the_response() -> None:
    pacing = Pacing("10/s burst 1; 100/minute")
    spaced = (Limit(10, 1.0, burst=1),)
    # The first answer has no round trip to compare with: a whole interval.
    assert pacing.after("k", 0, 30_000_000, 200, None) == [Drain(spaced, 0.1)]
    # Then less the fastest round trip seen before or now.
    assert pacing.after("k", 0, 2_000_000, 200, None) == [Drain(spaced, 0.098)]
    assert pacing.after("k", 0, 9_000_000, 200, None) == [Drain(spaced, 0.098)]
    assert pacing.after("k", 0, 1_000_000, 200, None) == [Drain(spaced, 0.099)]
    assert pacing.after("other", 0, 1_000_000, 200, None) == [Drain(spaced, 0.1)]
    # A round trip longer than the interval: nothing left to drain.
    slow = Pacing("10/s burst 1")
    slow.after("k", 0, 500_000_000, 200, None)
    assert slow.after("k", 0, 200_000_000, 200, None) == []
    # A Retry-After comes first, then the spacing.
    both = pacing.after("k", 0, 1_000_000, 429, "3")
    assert both == [Drain(pacing.limits, 3.0), Drain(spaced, 0.099)]


def test_a_slow_first_response_holds_back_what_the_burst_may_have_spread_over() -> None:
    pacing = Pacing("20/s; 1000/day burst 2")
    per_second = Limit(20, 1.0, burst=19)
    # 120 ms to the first answer: the held-back token covers 50, two more the other 70.
    assert pacing.after("k", 0, 120_000_000, 200, None) == [Charge((per_second,), 2)]
    assert pacing.after("k", 0, 120_000_000, 200, None) == []  # only the first
    assert pacing.after("fast", 0, 40_000_000, 200, None) == []


def test_the_charge_is_taken_from_the_bucket() -> None:
    _, mock = _counting()

    clock = FakeClock()

    def slow(request: httpx.Request) -> httpx.Response:
        clock.advance(0.12)  # the answer takes 120 ms
        return mock.handle_request(request)

    limiter = Limiter(clock=clock, sleep=clock.sleep)
    transport = RateLimitedTransport("20/s", limiter=limiter, transport=httpx.MockTransport(slow))
    with httpx.Client(transport=transport) as client:
        client.get("https://api.example.com/")
    left = limiter.peek("https://api.example.com:443", *transport.pacing.limits).remaining
    # One token sent, refilled (to the burst of 19) while the answer took 120 ms,
    # two held back since, and peek says what one more call would leave.
    assert left == 19 - 2 - 1


def _counting(
    status: int = 200, headers: dict[str, str] | None = None
) -> tuple[list[str], httpx.MockTransport]:
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(str(request.url))
        return httpx.Response(status, headers=headers)

    return sent, httpx.MockTransport(answer)


def test_a_wait_longer_than_the_timeout_raises_without_sending() -> None:
    sent, mock = _counting()
    transport = RateLimitedTransport("2/minute", transport=mock, timeout=1.0)
    with httpx.Client(transport=transport) as client:
        assert client.get("https://api.example.com/1").status_code == 200
        with pytest.raises(RateLimited) as raised:
            client.get("https://api.example.com/2")
    assert sent == ["https://api.example.com/1"]
    assert not raised.value.decision.allowed
    assert 29.0 < raised.value.retry_after <= 30.0


def test_each_origin_or_key_has_its_own_bucket() -> None:
    sent, mock = _counting()
    transport = RateLimitedTransport("2/minute", transport=mock, timeout=0)
    with httpx.Client(transport=transport) as client:
        for url in ("https://a.example/", "https://b.example/", "https://a.example:8443/"):
            client.get(url)
        with pytest.raises(RateLimited):
            client.get("https://a.example/again")
    assert len(sent) == 3

    sent, mock = _counting()
    by_tenant = RateLimitedTransport(
        "2/minute", transport=mock, timeout=0, key=lambda request: request.headers["X-Tenant"]
    )
    with httpx.Client(transport=by_tenant) as client:
        client.get("https://a.example/", headers={"X-Tenant": "one"})
        client.get("https://b.example/", headers={"X-Tenant": "two"})
        with pytest.raises(RateLimited):
            client.get("https://c.example/", headers={"X-Tenant": "one"})
    assert len(sent) == 2


def test_a_retry_after_holds_the_next_request_back() -> None:
    sent, mock = _counting(429, {"Retry-After": "5"})
    transport = RateLimitedTransport("100/s", limiter=Limiter(), transport=mock, timeout=1.0)
    with httpx.Client(transport=transport) as client:
        assert client.get("https://api.example.com/").status_code == 429
        with pytest.raises(RateLimited) as raised:
            client.get("https://api.example.com/")
        client.get("https://elsewhere.example.com/")  # another origin is not held
    assert len(sent) == 2
    assert 4.0 < raised.value.retry_after <= 5.0


def test_the_async_transport_raises_without_sending_too() -> None:
    sent, mock = _counting()

    async def main() -> None:
        transport = AsyncRateLimitedTransport("2/minute", transport=mock, timeout=0.5)
        async with httpx.AsyncClient(transport=transport) as client:
            assert (await client.get("https://api.example.com/1")).status_code == 200
            with pytest.raises(RateLimited):
                await client.get("https://api.example.com/2")

    asyncio.run(main())
    assert sent == ["https://api.example.com/1"]


def test_a_limiter_it_was_given_is_left_open() -> None:
    limiter = Limiter()
    _, mock = _counting()
    RateLimitedTransport("5/s", limiter=limiter, transport=mock).close()
    assert limiter.try_acquire("still-open", Limit(1, 1))
    owned = RateLimitedTransport("5/s", transport=mock)
    owned.close()
    with pytest.raises(Exception, match="closed"):
        owned._limiter.try_acquire("k", Limit(1, 1))


@pytest.mark.parametrize(
    "make",
    [
        lambda: RateLimitedTransport("5/s", limiter=AsyncLimiter()),  # type: ignore[arg-type]
        lambda: AsyncRateLimitedTransport("5/s", limiter=Limiter()),  # type: ignore[arg-type]
        lambda: RateLimitedTransport("5/s", timeout=-1),
        lambda: RateLimitedTransport("5/s", timeout=float("nan")),
        lambda: RateLimitedTransport("5/s", timeout="1"),  # type: ignore[arg-type]
        lambda: RateLimitedTransport("five per second"),
    ],
)
def test_bad_configuration_is_refused_at_once(make: object) -> None:
    with pytest.raises(ConfigurationError):
        make()  # type: ignore[operator]


def test_with_only_httpx2_installed_the_transport_uses_it() -> None:
    pytest.importorskip("httpx2")
    code = textwrap.dedent(
        """
        import sys
        sys.modules["httpx"] = None  # as if httpx 0.28 were not installed
        import httpx2
        from bucketcore.httpx import RateLimitedTransport, client_package
        assert client_package() is httpx2
        mock = httpx2.MockTransport(lambda request: httpx2.Response(200))
        with httpx2.Client(transport=RateLimitedTransport("5/s", transport=mock)) as client:
            print(client.get("https://api.example.com/").status_code)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "200"


def test_with_neither_client_installed_the_import_names_the_extra() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["httpx"] = sys.modules["httpx2"] = None
        try:
            import bucketcore.httpx
        except Exception as exc:
            print(type(exc).__name__, exc)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("ConfigurationError")
    assert "pip install 'bucketcore[httpx]'" in done.stdout
