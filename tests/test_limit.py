"""Limit construction and parsing; every bad input raises ConfigurationError."""

from __future__ import annotations

import math

import pytest

from bucketcore import Limit
from bucketcore.errors import BucketError, ConfigurationError


@pytest.mark.parametrize(
    ("spec", "tokens", "period", "burst"),
    [
        ("7/30s", 7, 30.0, 7),
        ("100/hour", 100, 3600.0, 100),
        ("10 per minute", 10, 60.0, 10),
        ("10/second burst 20", 10, 1.0, 20),
        ("5/0.5s", 5, 0.5, 5),
        ("1/d", 1, 86400.0, 1),
        ("3 / 2 hours", 3, 7200.0, 3),
        ("250/100ms", 250, 0.1, 250),
        ("  10/S  BURST 1 ", 10, 1.0, 1),
        ("10000000/s", 10_000_000, 1.0, 10_000_000),
    ],
)
def test_parse_reads_the_documented_forms(
    spec: str, tokens: int, period: float, burst: int
) -> None:
    limit = Limit.parse(spec)
    assert (limit.tokens, limit.period, limit.burst) == (tokens, period, burst)


def test_parse_many_splits_on_semicolons_and_commas() -> None:
    assert Limit.parse_many("10/s; 1000/day, 5/m") == [
        Limit(10, 1.0),
        Limit(1000, 86400.0),
        Limit(5, 60.0),
    ]


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "ten/second",
        "10",
        "10/",
        "/s",
        "10/fortnight",
        "0/s",
        "10/0s",
        "10/0.0000000001s",
        "-1/s",
        "10/s burst 0",
        "10/s burst",
        "10/s burst -3",
        "1.5/s",
        "10/s; ",
    ],
)
def test_malformed_specs_raise_and_quote_the_input(spec: str) -> None:
    parse = Limit.parse_many if ";" in spec else Limit.parse
    with pytest.raises(ConfigurationError) as caught:
        parse(spec)
    assert repr(spec) in str(caught.value) or not spec.strip()


@pytest.mark.parametrize(
    "arguments",
    [
        {"tokens": 0, "period": 1.0},
        {"tokens": -1, "period": 1.0},
        {"tokens": 1.5, "period": 1.0},
        {"tokens": True, "period": 1.0},
        {"tokens": math.nan, "period": 1.0},
        {"tokens": 1, "period": 0},
        {"tokens": 1, "period": -1.0},
        {"tokens": 1, "period": math.nan},
        {"tokens": 1, "period": math.inf},
        {"tokens": 1, "period": "1s"},
        {"tokens": 1, "period": 1.0, "burst": 0},
        {"tokens": 1, "period": 1.0, "burst": math.inf},
        {"tokens": 1, "period": 1.0, "burst": 2.0},
        {"tokens": 1, "period": 1.0, "name": ""},
        {"tokens": 1, "period": 1.0, "name": 5},
        {"tokens": 1, "period": 1.0, "name": "x" * 300},
    ],
)
def test_bad_limits_raise_configuration_error(arguments: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        Limit(**arguments)  # type: ignore[arg-type]


def test_configuration_error_is_a_value_error_and_a_bucket_error() -> None:
    with pytest.raises(ValueError, match="tokens"):
        Limit(0, 1.0)
    assert issubclass(ConfigurationError, BucketError)


def test_identity_names_a_shared_pool_or_the_spec() -> None:
    assert Limit(7, 30, name="general").identity == Limit(1, 1, name="general").identity
    assert Limit(7, 30).identity == Limit.parse("7/30s").identity
    assert Limit(7, 30).identity != Limit(7, 30, burst=8).identity
    assert Limit(7, 30).identity != Limit(14, 60).identity


def test_limits_are_frozen() -> None:
    limit = Limit(1, 1.0)
    with pytest.raises(AttributeError):
        limit.tokens = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("arguments", "why"),
    [
        ({"tokens": 1, "period": 1e300}, "at most a year"),
        ({"tokens": 1, "period": 10**5000}, "at most a year"),
        ({"tokens": 10**5000, "period": 1.0}, "at most"),
        ({"tokens": 1, "period": 1.0, "burst": 10**30}, "at most"),
        ({"tokens": 10**8, "period": 1.0}, "highest supported rate"),
        ({"tokens": 1, "period": 2e6}, "lowest supported rate"),
        ({"tokens": 1, "period": 3600.0, "burst": 10**12}, "year to refill"),
    ],
)
def test_limits_outside_the_supported_range_are_refused_when_made(
    arguments: dict[str, object], why: str
) -> None:
    # docs/design.md §3: never an OverflowError later, never a charge then an exception.
    with pytest.raises(ConfigurationError, match=why):
        Limit(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "limit",
    [
        Limit(10**7, 1.0),  # the highest rate
        Limit(1, 10**6),  # the lowest rate: 1e-6 per second
        Limit(10**7, 1.0, burst=10**12),  # the largest burst, refilled within a day
        Limit(100, 31_536_000.0),  # a year's period
        Limit(1, 3600.0, burst=8760),  # a burst that takes exactly a year to refill
    ],
)
def test_the_edges_of_the_supported_range_are_accepted(limit: Limit) -> None:
    assert limit.capacity_units > 0


def test_a_spec_with_thousands_of_digits_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        Limit.parse("9" * 5000 + "/s")
    with pytest.raises(ConfigurationError):
        Limit.parse("1/" + "9" * 5000 + "s")


def test_month_and_year_are_units_of_30_and_365_days() -> None:
    assert Limit.parse("5/month").period == 30 * 86400.0
    assert Limit.parse("100/year").period == 365 * 86400.0
    assert Limit.parse("10/week").period == 7 * 86400.0


def test_one_reduced_rate_and_burst_is_one_identity() -> None:
    assert (
        Limit(1, 60).identity
        == Limit(2, 120, burst=1).identity
        == Limit(60, 3600, burst=1).identity
    )
    assert Limit(1, 60).identity != Limit(2, 120).identity  # burst 2
