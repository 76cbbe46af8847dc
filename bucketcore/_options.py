"""Reading store options, from a URL's query (text) or from keywords (values).

Every backend reads its options through these, so ``timeout=nan``,
``max_connections=²`` or a 5000-digit int are the same ``ConfigurationError``
everywhere, with the option's name in the message (docs/design.md §3).

>>> seconds("timeout", "0.5"), count("max_connections", "10", minimum=1), flag("tls", "yes")
(0.5, 10, True)
"""

from __future__ import annotations

import math

from bucketcore.errors import ConfigurationError, shown

__all__ = ["choice", "count", "flag", "seconds"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_MAX_COUNT = 2**63 - 1


def flag(name: str, value: object) -> bool:
    """A bool, or its spelling in a URL: 1/0, true/false, yes/no, on/off.

    >>> flag("deny_cache", "off")
    False
    """
    if type(value) is bool:
        return value
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ConfigurationError(f"option {name} must be true or false, got {shown(value)}")


def seconds(
    name: str,
    value: object,
    *,
    allow_zero: bool = False,
    allow_inf: bool = False,
    maximum: float = 31_536_000.0,
) -> float:
    """A number of seconds: finite (unless ``allow_inf``), > 0 (or >= 0), at most ``maximum``.

    >>> seconds("lock_timeout", "inf", allow_inf=True)
    inf
    >>> seconds("t", "nan", maximum=9)
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: option t must be ... > 0, at most 9, got 'nan'
    """
    number = math.nan
    if type(value) is str and len(value) <= 40:
        try:
            number = float(value)
        except ValueError:
            number = math.nan
    elif type(value) is float or (type(value) is int and abs(value) <= 2**53):
        number = float(value)
    lowest_ok = number >= 0 if allow_zero else number > 0
    in_range = number <= maximum or (allow_inf and number == math.inf)
    if not (lowest_ok and in_range):
        bound = ">= 0" if allow_zero else "> 0"
        most = f", at most {maximum:g}" + (" or inf" if allow_inf else "")
        raise ConfigurationError(
            f"option {name} must be a number of seconds {bound}{most}, got {shown(value)}"
        )
    return number


def count(name: str, value: object, *, minimum: int, maximum: int = _MAX_COUNT) -> int:
    """A whole number from ``minimum`` to ``maximum``; text must be ASCII digits.

    >>> count("db", "3", minimum=0)
    3
    >>> count("max_connections", "²", minimum=1)
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: option max_connections must be an int from 1 ...
    """
    number: object = value
    if type(value) is str and value.isascii() and value.isdigit() and len(value) <= 19:
        number = int(value)
    if type(number) is not int or not minimum <= number <= maximum:
        raise ConfigurationError(
            f"option {name} must be an int from {minimum} to {maximum}, got {shown(value)}"
        )
    return number


def choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (case-insensitive text).

    >>> choice("durability", "WAL", ("wal", "sync", "periodic"))
    'wal'
    """
    if isinstance(value, str) and value.lower() in choices:
        return value.lower()
    raise ConfigurationError(
        f"option {name} must be one of {', '.join(choices)}, got {shown(value)}"
    )
