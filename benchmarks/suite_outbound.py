"""Outbound pacing: the transport's cost per request, and the rate it reaches against a server.

Both groups run against support/limited_server.py in its own process.

- ``outbound.overhead``: an ``httpx.Client`` over the bare ``HTTPTransport``
  against one over ``RateLimitedTransport`` with a limit that never waits,
  on the same keep-alive server: what the pacing adds to a request.
- ``outbound.rate`` (and ``outbound.rate_burst1``): a greedy client through
  the transport against a server enforcing the same limit. The rows are the
  time per request the server allows over the run's span and the time per
  request the client got; their ratio is the share of the allowed rate (bar:
  98%). A refused request is counted in the row and the note.
"""

from __future__ import annotations

from typing import Any

from benchmarks import bars
from benchmarks.harness import (
    BUCKETCORE,
    FLOOR,
    Case,
    Group,
    Sizes,
    build,
    close_all,
    group_of,
    interleave,
    progress,
    time_pass,
)
from bucketcore import Limit, Limiter
from support.limited_server import arrivals, serving

SUITE = "outbound"
NEVER_WAITS = "1000000/s"


def available() -> str | None:
    """Why the suite cannot run here, or None."""
    try:
        from bucketcore.integrations.httpx import client_package

        client_package()
    except Exception as exc:
        return f"no httpx client package ({exc})"
    return None


def _client(transport: Any) -> Any:
    from bucketcore.integrations.httpx import client_package

    return client_package().Client(transport=transport)


def _overhead(sizes: Sizes) -> Group:
    from bucketcore.integrations.httpx import RateLimitedTransport, client_package

    package = client_package()
    with serving(NEVER_WAITS) as base:
        url = f"{base}/item"

        def bare() -> Any:
            client = _client(package.HTTPTransport())

            def decide(key: object) -> object:
                return client.get(url)

            decide.close = client.close  # type: ignore[attr-defined]
            return decide

        def paced() -> Any:
            client = _client(RateLimitedTransport(NEVER_WAITS))

            def decide(key: object) -> object:
                return client.get(url)

            decide.close = client.close  # type: ignore[attr-defined]
            return decide

        built = build(
            [
                Case(bars.OUTBOUND_BARE, FLOOR, bare),
                Case(bars.OUTBOUND_PACED, BUCKETCORE, paced),
            ]
        )
        keys = list(range(sizes.store_calls))
        times = interleave(built, sizes.rounds, lambda decide: time_pass(decide, keys))
        close_all(built)
    return group_of(
        "outbound.overhead",
        f"{package.__name__}.Client, one GET on a keep-alive local server, nothing waits",
        SUITE,
        bars.OUTBOUND_BARE,
        built,
        times,
        unit="ns/request",
    )


def _rate(group_id: str, spec: str, seconds: float) -> Group:
    from bucketcore.integrations.httpx import RateLimitedTransport

    limit = Limit.parse(spec)
    assert limit.burst is not None
    count = limit.burst + round(seconds * limit.tokens / limit.period)
    with serving(spec) as base, _client(RateLimitedTransport(spec)) as client:
        for n in range(count):
            client.get(f"{base}/item/{n}")
        seen = arrivals(base)
    span_ns = max(1.0, seen.span_seconds * 1e9)
    allowed = limit.burst + seen.span_seconds * limit.tokens / limit.period
    refused = len(seen.refused)
    group = Group(
        group_id,
        f"a greedy client, {count} requests through RateLimitedTransport, server at {spec}",
        SUITE,
        bars.OUTBOUND_LIMIT,
        unit="ns/request",
        note=f"{refused} of {count} requests refused (429)",
    )
    group.add(bars.OUTBOUND_LIMIT, FLOOR, span_ns / allowed)
    # A refused request counts as not granted: it cannot raise the share.
    group.add(bars.OUTBOUND_GOT, BUCKETCORE, span_ns / max(1, len(seen.allowed)), refused=refused)
    return group


def run(sizes: Sizes) -> list[Group]:
    seconds = 0.5 if sizes.name == "smoke" else 3.0
    progress(f"  {SUITE}: overhead per request, then {seconds:g} s against a limited server")
    groups = [_overhead(sizes), _rate("outbound.rate", "20/s", seconds)]
    if hasattr(Limiter, "drain"):  # a burst of one is paced with Limiter.drain
        groups.append(_rate("outbound.rate_burst1", "5/s burst 1", seconds))
    else:
        progress("    outbound.rate_burst1: not measured (Limiter.drain is not on this branch)")
    return groups
