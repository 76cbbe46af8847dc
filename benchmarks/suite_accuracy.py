"""Accuracy next to speed: fixed traffic patterns replayed through every library.

Each pattern is a list of instants (integer nanoseconds from the start) at
which one client asks for one token of one key. It is replayed on a virtual
clock: bucketcore and pyrate-limiter take a clock; the others read
``time.time`` / ``time.monotonic``, which are patched for the replay (they
look the function up on the ``time`` module at each call). So a minute of
traffic replays in milliseconds and every library sees the same instants.

The reference is the exact token bucket (``fractions.Fraction``, no
rounding) on the same instants; its ``burst + rate * t`` is the contract's
upper bound for a greedy client (docs/design.md §3). A library that grants more
than the exact bucket lets traffic through that the limit forbids; one that
grants fewer throttles a client that was within its limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from typing import Any
from unittest import mock

from benchmarks import contenders
from benchmarks.contenders import Policy
from benchmarks.harness import Decide, Sizes, progress

SUITE = "accuracy"
_SECOND = 10**9


@dataclass(frozen=True)
class Pattern:
    """A traffic pattern: the policy and the instants of the calls."""

    id: str
    title: str
    policy: Policy
    instants: tuple[int, ...]

    @property
    def horizon_ns(self) -> int:
        return self.instants[-1] - self.instants[0]


def steady(every_ns: int, seconds: float) -> tuple[int, ...]:
    return tuple(range(0, round(seconds * _SECOND) + 1, every_ns))


def bursty(burst_calls: int, every_s: float, seconds: float) -> tuple[int, ...]:
    """``burst_calls`` calls 10 µs apart, every ``every_s`` seconds."""
    starts = range(0, round(seconds * _SECOND) + 1, round(every_s * _SECOND))
    return tuple(start + i * 10_000 for start in starts for i in range(burst_calls))


def edges(calls: int, every_s: float, seconds: float) -> tuple[int, ...]:
    """``calls`` calls 5 ms before and ``calls`` 5 ms after every ``every_s`` seconds."""
    step = round(every_s * _SECOND)
    instants = []
    for boundary in range(step, round(seconds * _SECOND) + 1, step):
        instants += [boundary - 5_000_000 + i * 1_000 for i in range(calls)]
        instants += [boundary + 5_000_000 + i * 1_000 for i in range(calls)]
    return tuple(instants)


def patterns(seconds: float) -> list[Pattern]:
    five, half, ten = Policy(5, 1.0, 1), Policy(1, 2.0, 1), Policy(10, 1.0, 20)
    return [
        Pattern(
            "steady-5s-b1",
            "steady: 5/s burst 1, a call every 1 ms",
            five,
            steady(1_000_000, seconds),
        ),
        Pattern(
            "slow-0.5s-b1",
            "slow: 0.5/s burst 1, a call every 10 ms",
            half,
            steady(10_000_000, seconds),
        ),
        Pattern(
            "bursty-10s-b20",
            "bursty: 10/s burst 20, 60 calls at once every 2.5 s",
            ten,
            bursty(60, 2.5, seconds),
        ),
        Pattern(
            "edge-10s-b20",
            "window edge: 10/s burst 20, 40 calls 5 ms either side of every 2 s",
            ten,
            edges(40, 2.0, seconds),
        ),
        Pattern(
            "steady-10s-b20-odd",
            "steady: 10/s burst 20, a call every 37 ms (off the window grid)",
            ten,
            steady(37_000_000, seconds),
        ),
    ]


def exact(policy: Policy, instants: tuple[int, ...]) -> int:
    """Tokens an ideal, unrounded token bucket grants at these instants."""
    rate = Fraction(policy.tokens) / Fraction(policy.period) / _SECOND  # tokens per ns
    tokens, last, granted = Fraction(policy.burst), instants[0], 0
    for at in instants:
        tokens = min(Fraction(policy.burst), tokens + rate * (at - last))
        last = at
        if tokens >= 1:
            tokens -= 1
            granted += 1
    return granted


class VirtualClock:
    """Wall and monotonic time that move only when the replay says so."""

    WALL_START = 1_800_000_000 * _SECOND  # whole seconds: a fixed window starts at 0
    MONO_START = 1_000 * _SECOND

    def __init__(self) -> None:
        self.offset_ns = 0

    def monotonic_ns(self) -> int:
        return self.MONO_START + self.offset_ns

    def monotonic(self) -> float:
        return self.monotonic_ns() / _SECOND

    def time_ns(self) -> int:
        return self.WALL_START + self.offset_ns

    def time(self) -> float:
        return self.time_ns() / _SECOND

    def patch(self) -> ExitStack:
        """Patch the ``time`` module's clocks (for libraries that take no clock)."""
        stack = ExitStack()
        for name in ("time", "time_ns", "monotonic", "monotonic_ns"):
            stack.enter_context(mock.patch.object(time, name, getattr(self, name)))
        return stack


class _PyrateClock:
    """A pyrate-limiter clock (milliseconds) on the virtual clock."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock

    def now(self) -> int:
        return self.clock.monotonic_ns() // 1_000_000


def _pyrate(policy: Policy, clock: VirtualClock) -> Decide:
    from pyrate_limiter.clocks import AbstractClock

    class Clock(_PyrateClock, AbstractClock):  # type: ignore[misc]
        pass

    return contenders.make_pyrate(policy, clock=Clock(clock))


LIBRARIES: dict[str, Callable[[Policy, VirtualClock], Decide]] = {
    "bucketcore": lambda p, c: contenders.make_bucketcore(p, clock=c.monotonic_ns),
    contenders.FALCONRY: lambda p, c: contenders.make_falconry(p),
    contenders.THROTTLED: lambda p, c: contenders.make_throttled(p),
    contenders.PYRATE: _pyrate,
    contenders.LIMITS_FIXED: lambda p, c: contenders.make_limits(p, "fixed"),
    contenders.LIMITS_MOVING: lambda p, c: contenders.make_limits(p, "moving"),
    contenders.LIMITS_SLIDING: lambda p, c: contenders.make_limits(p, "sliding"),
}


def replay(library: str, pattern: Pattern) -> int:
    """How many of the pattern's calls ``library`` grants."""
    clock = VirtualClock()
    with clock.patch():
        decide = LIBRARIES[library](pattern.policy, clock)
        granted = 0
        for at in pattern.instants:
            clock.offset_ns = at
            if decide("client"):
                granted += 1
        closer: Any = getattr(decide, "close", None)
        if callable(closer):
            closer()
    return granted


def _window(policy: Policy) -> str:
    amount, seconds = policy.window()
    return f"{amount} per {seconds} s"


def run(sizes: Sizes) -> list[dict[str, Any]]:
    """One row per (pattern, library): granted next to the exact bucket."""
    rows = []
    for pattern in patterns(sizes.replay_seconds):
        progress(f"  {SUITE}: {pattern.title}")
        reference = exact(pattern.policy, pattern.instants)
        seconds = Fraction(pattern.horizon_ns, _SECOND)
        bound = (
            pattern.policy.burst
            + Fraction(pattern.policy.tokens) / Fraction(pattern.policy.period) * seconds
        )
        for library in LIBRARIES:
            try:
                granted = replay(library, pattern)
            except Exception as exc:  # a peer that cannot express the pattern
                progress(f"    {library}: failed ({type(exc).__name__}: {exc})")
                continue
            rows.append(
                {
                    "pattern": pattern.id,
                    "title": pattern.title,
                    "library": library,
                    "calls": len(pattern.instants),
                    "seconds": float(seconds),
                    "granted": granted,
                    "exact": reference,
                    "bound": float(bound),
                    "excess": granted - reference,
                    "window": _window(pattern.policy) if library.startswith("limits") else "",
                }
            )
    return rows
