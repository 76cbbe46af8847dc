"""``Limit``: how many tokens a bucket refills per period, and how many it holds.

>>> Limit.parse("10/second burst 20")
Limit(tokens=10, period=1.0, burst=20, name=None)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from bucketcore.errors import ConfigurationError, shown

__all__ = ["Limit", "Signature"]

_NS_PER_SECOND = 1_000_000_000
_MAX_NAME_BYTES = 256

_UNIT_SECONDS = {
    "ms": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
    "week": 604800.0,
    "weeks": 604800.0,
    "month": 2592000.0,  # 30 days
    "months": 2592000.0,
    "y": 31536000.0,  # 365 days
    "year": 31536000.0,
    "years": 31536000.0,
}

# The supported range (docs/design.md §3). Inside it every backend's
# arithmetic is exact (Redis keeps a bucket's debt in a double of
# microseconds: under 2**53 with room to spare), so a limit outside it is
# refused where it is made, never with an OverflowError later.
MIN_RATE_PER_S = 1e-6
MAX_RATE_PER_S = 1e7
MAX_BURST = 10**12
MAX_PERIOD_S = 31_536_000  # a year of 365 days
_MAX_PERIOD_NS = MAX_PERIOD_S * _NS_PER_SECOND

# "7/30s", "100/hour", "10 per minute", "10/second burst 20", "5/0.5s"
_SPEC = re.compile(
    r"""
    \s*(?P<tokens>\d{1,20})
    \s*(?:/|\bper\b)
    \s*(?P<count>\d{1,20}(?:\.\d{1,20})?)?
    \s*(?P<unit>[a-z]+)
    (?:\s+burst\s+(?P<burst>\d{1,20}))?
    \s*
    """,
    re.VERBOSE | re.IGNORECASE | re.ASCII,
)


def _short(value: object) -> str:
    """``repr(value)``, cut short: a 5000-digit int is not echoed whole."""
    text = repr(value) if type(value) is not int or value.bit_length() < 200 else "a huge int"
    return text if len(text) <= 60 else text[:57] + "..."


def _count(value: object, what: str) -> int:
    if type(value) is not int:
        raise ConfigurationError(f"{what} must be an int, got {_short(value)}")
    if value < 1:
        raise ConfigurationError(f"{what} must be >= 1, got {_short(value)}")
    if value > MAX_BURST:
        raise ConfigurationError(f"{what} must be at most {MAX_BURST:.0e}, got {_short(value)}")
    return value


def _period_ns(period: object) -> int:
    if type(period) not in (int, float):
        raise ConfigurationError(f"period must be a number of seconds, got {_short(period)}")
    if type(period) is int and period > MAX_PERIOD_S:  # before float(): 10**5000 overflows it
        raise ConfigurationError(f"period must be at most a year, got {_short(period)} s")
    seconds = float(period)  # type: ignore[arg-type]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(
            f"period must be a finite number of seconds > 0, got {shown(period)}"
        )
    if seconds > MAX_PERIOD_S:
        raise ConfigurationError(
            f"period must be at most a year ({MAX_PERIOD_S} s): {shown(period)}"
        )
    period_ns = round(seconds * _NS_PER_SECOND)
    if period_ns < 1:
        raise ConfigurationError(f"period must be at least one nanosecond, got {shown(period)}")
    return period_ns


class Signature(NamedTuple):
    """What a stored state means in a limit's units: enough to convert it to another limit.

    >>> Limit(2, 1.0).signature
    Signature(units_per_ns=1, token_units=500000000, burst=2)
    """

    units_per_ns: int
    token_units: int
    burst: int


def _check_range(tokens: int, period_ns: int, burst: int) -> None:
    """Refuse a rate outside 1e-6/s..1e7/s, or a burst that takes over a year to refill."""
    # rate = tokens * 1e9 / period_ns, compared in integers.
    if tokens * 10**15 < period_ns:
        raise ConfigurationError(
            f"{tokens} per {period_ns / 1e9:g} s is below the lowest supported rate "
            f"({MIN_RATE_PER_S:g} per second)"
        )
    if tokens * 100 > period_ns:
        raise ConfigurationError(
            f"{tokens} per {period_ns / 1e9:g} s is above the highest supported rate "
            f"({MAX_RATE_PER_S:g} per second)"
        )
    if burst * period_ns > _MAX_PERIOD_NS * tokens:
        raise ConfigurationError(
            f"a burst of {burst} at {tokens} per {period_ns / 1e9:g} s takes more than a "
            "year to refill; the supported horizon is a year"
        )


@dataclass(frozen=True, slots=True)
class Limit:
    """``tokens`` tokens refill per ``period`` seconds; the bucket holds ``burst``.

    Refill is continuous: ``Limit(10, 1.0)`` adds one token every 100 ms.
    Limits with the same ``name`` share one bucket per key (a shared pool);
    unnamed limits are identified by their rate and burst.

    >>> Limit(7, 30, name="general").burst
    7
    """

    tokens: int
    period: float
    burst: int | None = field(default=None, kw_only=True)
    name: str | None = field(default=None, kw_only=True)

    # Derived integer arithmetic (see bucketcore._gcra). One token costs
    # `token_units` units of theoretical time; a nanosecond is `units_per_ns`
    # units; so the emission interval period_ns / tokens is exact.
    period_ns: int = field(init=False, repr=False, compare=False)
    identity: str = field(init=False, repr=False, compare=False)
    units_per_ns: int = field(init=False, repr=False, compare=False)
    token_units: int = field(init=False, repr=False, compare=False)
    capacity_units: int = field(init=False, repr=False, compare=False)
    signature: Signature = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tokens = _count(self.tokens, "tokens")
        burst = tokens if self.burst is None else _count(self.burst, "burst")
        period_ns = _period_ns(self.period)
        _check_range(tokens, period_ns, burst)
        name = self.name
        if name is not None:
            if type(name) is not str or not name:
                raise ConfigurationError(f"name must be a non-empty str, got {shown(name)}")
            if len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
                raise ConfigurationError(
                    f"name is longer than {_MAX_NAME_BYTES} bytes: {shown(name)}"
                )
        common = math.gcd(period_ns, tokens)
        token_units = period_ns // common
        if name is not None:
            identity = "n:" + name
        else:
            # The reduced rate: 1/60s and 2/120s (same burst) are one pool.
            identity = f"s:{tokens // common}/{token_units}ns/{burst}"
        init = object.__setattr__  # the documented way to fill a frozen dataclass
        init(self, "period", float(self.period))
        init(self, "burst", burst)
        init(self, "period_ns", period_ns)
        init(self, "identity", identity)
        init(self, "units_per_ns", tokens // common)
        init(self, "token_units", token_units)
        init(self, "capacity_units", burst * token_units)
        init(self, "signature", Signature(tokens // common, token_units, burst))

    @classmethod
    def parse(cls, spec: str, *, name: str | None = None) -> Limit:
        """Parse ``"<tokens>/<period>"`` with an optional ``burst N``.

        Units: ms, s, m, h, d, or their words (second, minutes, ...); the
        separator is ``/`` or ``per``.

        >>> Limit.parse("7/30s") == Limit(7, 30)
        True
        """
        if type(spec) is not str:
            raise ConfigurationError(f"a limit spec must be a str, got {shown(spec)}")
        match = _SPEC.fullmatch(spec)
        if match is None:
            raise ConfigurationError(
                f"malformed limit {shown(spec)}: expected e.g. '10/second', '7/30s', "
                "'100 per hour' or '10/s burst 20'"
            )
        unit = _UNIT_SECONDS.get(match["unit"].lower())
        if unit is None:
            raise ConfigurationError(f"unknown time unit {match['unit']!r} in limit {shown(spec)}")
        count = float(match["count"]) if match["count"] else 1.0
        burst = int(match["burst"]) if match["burst"] else None
        try:
            return cls(int(match["tokens"]), count * unit, burst=burst, name=name)
        except ConfigurationError as exc:
            raise ConfigurationError(f"invalid limit {shown(spec)}: {exc}") from None

    @classmethod
    def parse_many(cls, specs: str) -> list[Limit]:
        """Parse several limits separated by ``;`` or ``,``.

        >>> [limit.tokens for limit in Limit.parse_many("10/s; 1000/day")]
        [10, 1000]
        """
        if type(specs) is not str:
            raise ConfigurationError(f"limit specs must be a str, got {shown(specs)}")
        parts = [part for part in re.split(r"[;,]", specs)]
        if not any(part.strip() for part in parts):
            raise ConfigurationError(f"no limits in {shown(specs)}")
        for part in parts:
            if not part.strip():
                raise ConfigurationError(f"empty limit in {shown(specs)}")
        return [cls.parse(part) for part in parts]

    @property
    def rate(self) -> float:
        """Tokens per second (for display; the arithmetic never uses it).

        >>> Limit(7, 30).rate
        0.23333333333333334
        """
        return self.tokens / self.period

    @property
    def label(self) -> str:
        """How the limit is named to people: its ``name``, else its spec.

        >>> Limit(7, 30, name="general").label, Limit(7, 30).label
        ('general', '7/30s')
        """
        return self.name if self.name is not None else str(self)

    def __str__(self) -> str:
        spec = f"{self.tokens}/{self.period:g}s"
        if self.burst != self.tokens:
            spec += f" burst {self.burst}"
        return spec if self.name is None else f"{self.name}={spec}"
