"""Pacing calls to someone else's API: the step the httpx and requests clients share.

A ``Pacing`` holds the server's limits as the client keeps them, and says,
without I/O, what a response means for the bucket: how long to ``drain``
it, and which limits. ``take_turn`` / ``take_turn_async`` wait for a
request's turn (``wait``: first come, first served, exact) and raise
``RateLimited`` instead of sending when the wait would exceed the timeout.
``bucketcore.httpx`` and ``bucketcore.requests`` only read their request
and response around these.

The server counts arrivals, not sends. A request's latency varies, so two
requests sent exactly one interval apart can arrive closer than that, and
a server holding the same limit refuses the second. Two guards absorb it
(docs/design.md §5):

- a limit with a burst of two or more is kept one token short: that token
  absorbs up to one interval of latency jitter, and costs one request once,
  never any rate. The first response from a host also tells how long its
  first request took to arrive (connecting included) at most; the burst's
  arrivals can spread over that, so any part of it beyond one interval is
  held back too, as tokens taken then (``Charge``);
- a limit with a burst of one has nothing to hold back, so its interval is
  counted from the response instead of the send: when a response arrives,
  the bucket is drained until one interval after the server can have seen
  the request. That is the response's arrival less the fastest round trip
  seen to that host (the two halves of a round trip, the request's way
  there and the answer's way back, are what separates two arrivals), so
  the cost is the round trip's spread, not the round trip.

A 429 or 503 that carries ``Retry-After`` (seconds or an HTTP date) drains
every limit of the bucket until then.

>>> pacing = Pacing(limits_from("5/s"))
>>> [str(limit) for limit in pacing.limits]
['5/1s burst 4']
>>> pacing.after("https://api.example.com:443", 0, 2_000_000, 429, "7")
[Drain(limits=(Limit(tokens=5, period=1.0, burst=4, name=None),), seconds=7.0)]
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bucketcore._keys import Key
from bucketcore.decision import Decision
from bucketcore.errors import RateLimited
from bucketcore.integrations.http import LimitSpec, limits_from
from bucketcore.limit import Limit
from bucketcore.limiter import AsyncLimiter, Limiter

__all__ = [
    "MAX_RETRY_AFTER",
    "Charge",
    "Drain",
    "Pacing",
    "Step",
    "apply",
    "apply_async",
    "origin",
    "retry_after_seconds",
    "take_turn",
    "take_turn_async",
]

MAX_RETRY_AFTER = 86_400.0
"""The longest ``Retry-After`` obeyed (a day); a longer one is cut to this."""

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# Round trips remembered per key, for the burst-one guard; past this many
# keys the memory starts over (a round trip is re-learned in one request).
_MAX_REMEMBERED = 4096


def origin(scheme: str, host: str, port: int | None) -> str:
    """The default bucket key: one per (scheme, host, port), the port always spelled out.

    >>> origin("HTTPS", "API.example.com", None), origin("http", "::1", 8080)
    ('https://api.example.com:443', 'http://[::1]:8080')
    """
    scheme = scheme.lower()
    host = host.lower()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    if port is None:
        port = _DEFAULT_PORTS.get(scheme, 0)
    return f"{scheme}://{host}:{port}"


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks for (``now``: wall-clock seconds), or None.

    Delay-seconds or an HTTP date; a date in the past is 0; unreadable is
    None; more than ``MAX_RETRY_AFTER`` is cut to it.

    >>> retry_after_seconds("2"), retry_after_seconds("soon")
    (2.0, None)
    >>> retry_after_seconds("Thu, 01 Jan 1970 00:00:30 GMT", now=10.0)
    20.0
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit() and value.isascii():
        seconds = float(int(value[:12]))  # twelve digits are already years
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110: an HTTP date is always GMT
            return None
        wall = time.time() if now is None else now
        seconds = max(0.0, when.timestamp() - wall)
    return min(seconds, MAX_RETRY_AFTER)


def _burst(limit: Limit) -> int:
    # `Limit.burst` is typed optional (None asks for `tokens`); this is the filled-in value.
    return limit.capacity_units // limit.token_units


def _with_headroom(limit: Limit) -> Limit:
    burst = _burst(limit)
    if burst < 2:
        return limit
    return Limit(limit.tokens, limit.period, burst=burst - 1, name=limit.name)


@dataclass(frozen=True, slots=True)
class Drain:
    """Empty these limits of the request's bucket for ``seconds`` (``Limiter.drain``)."""

    limits: tuple[Limit, ...]
    seconds: float


@dataclass(frozen=True, slots=True)
class Charge:
    """Take ``tokens`` more from these limits of the request's bucket, if they are there."""

    limits: tuple[Limit, ...]
    tokens: int


Step = Drain | Charge


class Pacing:
    """The server's limits as the client keeps them, and what a response means.

    ``limits`` are what each request waits for; ``after`` turns a response
    into the drains to apply. It keeps the fastest round trip seen per key.

    >>> pacing = Pacing(limits_from("10/s burst 1"))
    >>> [d.seconds for d in pacing.after("k", 0, 30_000_000, status=200, retry_after=None)]
    [0.1]
    >>> [d.seconds for d in pacing.after("k", 0, 2_000_000, status=200, retry_after=None)]
    [0.098]
    """

    def __init__(self, spec: LimitSpec) -> None:
        stated = limits_from(spec, for_http=False)
        self.limits: tuple[Limit, ...] = tuple(_with_headroom(limit) for limit in stated)
        self._spaced = tuple(limit for limit in stated if _burst(limit) == 1)
        self._held = tuple(limit for limit in self.limits if limit not in stated)
        intervals = (limit.period_ns / limit.tokens for limit in self._spaced)
        self._interval_ns = max(intervals, default=0.0)
        self._fastest: dict[Key, int] = {}

    def after(
        self, key: Key, sent_ns: int, received_ns: int, status: int, retry_after: str | None
    ) -> list[Step]:
        """What a response calls for (monotonic ns of the send and of the response)."""
        steps: list[Step] = []
        if status in (429, 503):
            seconds = retry_after_seconds(retry_after)
            if seconds:
                steps.append(Drain(self.limits, seconds))
        round_trip = received_ns - sent_ns
        earlier = self._fastest.get(key)
        if earlier is None or round_trip < earlier:
            if len(self._fastest) >= _MAX_REMEMBERED:
                self._fastest.clear()
            self._fastest[key] = round_trip
        if earlier is None:
            steps += self._first_charges(round_trip)
        if self._spaced:
            # The next request must arrive an interval after this one did. This
            # one arrived before its response by the round trip's second half,
            # the next arrives after its send by the first half; together about
            # a round trip, taken as the fastest one seen before or now. The
            # first response has nothing to compare with: it counts in full.
            allowance = 0 if earlier is None else min(earlier, round_trip)
            seconds = (self._interval_ns - allowance) / 1e9
            if seconds > 0:
                steps.append(Drain(self._spaced, seconds))
        return steps

    def _first_charges(self, round_trip: int) -> list[Step]:
        charges: list[Step] = []
        for limit in self._held:
            interval = limit.period_ns / limit.tokens
            beyond = round_trip - interval  # the token held back covers one interval
            if beyond > 0:
                tokens = min(math.ceil(beyond / interval), _burst(limit))
                charges.append(Charge((limit,), tokens))
        return charges


def _raise_if_denied(decision: Decision) -> None:
    if not decision.allowed:
        raise RateLimited(decision)


def take_turn(limiter: Limiter, key: Key, limits: Sequence[Limit], timeout: float | None) -> None:
    """Wait for a request's turn, or raise ``RateLimited`` if it is beyond ``timeout``.

    >>> take_turn(Limiter(), "https://a.example:443", limits_from("1/minute"), timeout=0)
    """
    _raise_if_denied(limiter.wait(key, *limits, timeout=timeout))


async def take_turn_async(
    limiter: AsyncLimiter, key: Key, limits: Sequence[Limit], timeout: float | None
) -> None:
    """``take_turn`` for an ``AsyncLimiter``."""
    _raise_if_denied(await limiter.wait(key, *limits, timeout=timeout))


def apply(limiter: Limiter, key: Key, steps: Sequence[Step]) -> None:
    """Apply what ``Pacing.after`` said to the request's bucket."""
    for step in steps:
        if isinstance(step, Charge):
            limiter.acquire(key, *step.limits, cost=step.tokens)
        else:
            limiter.drain(key, *step.limits, seconds=step.seconds)


async def apply_async(limiter: AsyncLimiter, key: Key, steps: Sequence[Step]) -> None:
    """``apply`` for an ``AsyncLimiter``."""
    for step in steps:
        if isinstance(step, Charge):
            await limiter.acquire(key, *step.limits, cost=step.tokens)
        else:
            await limiter.drain(key, *step.limits, seconds=step.seconds)
