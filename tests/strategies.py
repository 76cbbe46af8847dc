"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from bucketcore import Limit
from bucketcore.limit import MAX_BURST, MAX_PERIOD_S, MAX_RATE_PER_S, MIN_RATE_PER_S

# Periods chosen to make awkward gcds, across the contract's range
# (docs/design.md §3: rates 1e-6/s .. 1e7/s, bursts up to 1e12, a year's horizon).
PERIODS = [1e-3, 0.001234567, 0.5, 1.0, 3.0, 7.3, 30.0, 3600.0, 86400.0, 1e6, MAX_PERIOD_S]


@st.composite
def limits(draw: st.DrawFn, names: tuple[str, ...] = ()) -> Limit:
    """Any valid Limit; named from ``names`` some of the time (shared pools)."""
    period = draw(st.sampled_from(PERIODS))
    low = max(1, math.ceil(MIN_RATE_PER_S * period))
    high = max(low, min(MAX_BURST, int(MAX_RATE_PER_S * period)))
    tokens = draw(st.one_of(st.integers(low, min(high, low + 10)), st.integers(low, high)))
    # The burst refills within a year: burst <= rate * year.
    max_burst = max(1, min(MAX_BURST, tokens * MAX_PERIOD_S // math.ceil(period)))
    burst = draw(st.one_of(st.none(), st.integers(1, min(5, max_burst)), st.integers(1, max_burst)))
    if burst is None and tokens > max_burst:
        burst = max_burst
    name = draw(st.one_of(st.none(), st.sampled_from(names))) if names else None
    return Limit(tokens, period, burst=burst, name=name)
