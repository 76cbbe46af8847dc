"""The exceptions bucketcore raises, in one small hierarchy.

Catch ``BucketError`` for everything; catch ``StoreUnavailable`` to handle
a remote store being down.

>>> from bucketcore import Limit
>>> from bucketcore.errors import ConfigurationError
>>> try:
...     Limit.parse("ten per fortnight")
... except ConfigurationError as exc:
...     print("bad limit")
bad limit
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bucketcore.decision import Decision

__all__ = [
    "BucketError",
    "ConfigurationError",
    "CorruptState",
    "RateLimited",
    "StoreClosed",
    "StoreError",
    "StoreLocked",
    "StoreUnavailable",
    "shown",
]


class BucketError(Exception):
    """Base class of every error bucketcore raises on purpose."""


class ConfigurationError(BucketError, ValueError):
    """Bad input: a malformed limit, key, cost, URL or option."""


class StoreError(BucketError):
    """The store behind a limiter failed or refused an operation."""


class StoreUnavailable(StoreError):
    """A remote store could not be reached within the configured timeout."""


class StoreLocked(StoreError):
    """Another process owns the store (its pid and host are in the message)."""


class CorruptState(StoreError):
    """A stored bucket record could not be decoded."""


class StoreClosed(StoreError):
    """The limiter (or its store) was used after ``close()``."""


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` for an error message: bounded, and never raising itself.

    A 5000-digit int has no repr (Python refuses to convert it), and a user's
    object may have a broken ``__repr__``: a message about bad input must not
    fail on that input.

    >>> shown(10**5000)
    'an int of about 5001 digits'
    >>> len(shown("x" * 100))
    80
    """
    if isinstance(value, int) and value.bit_length() > 256:
        return f"an int of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    try:
        text = repr(value)
    except Exception:
        return f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _seconds(value: float) -> str:
    """Three significant digits, never in exponent form: 4.29, 30, 1200."""
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


class RateLimited(BucketError):
    """A call was denied; carries the ``Decision``.

    Raised by ``rate_limited``, and by the outbound transports and adapter
    (``bucketcore.httpx``, ``bucketcore.requests``) instead of sending when
    a request's turn is further away than their ``timeout``.

    >>> from bucketcore import Decision, Limit
    >>> error = RateLimited(Decision(False, 0, 2.5, 10.0, Limit(1, 10, name="smtp")))
    >>> error.retry_after, str(error)
    (2.5, "rate limited by 'smtp': retry in 2.5 s")
    >>> str(RateLimited(Decision(False, 0, 1200.0, 3600.0, Limit(3, 3600))))
    "rate limited by '3/3600s': retry in 1200 s"
    """

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        limit = decision.limit
        name = limit.label
        if decision.retry_after == math.inf:
            wait = "the cost exceeds the burst and can never succeed"
        else:
            wait = f"retry in {_seconds(decision.retry_after)} s"
        super().__init__(f"rate limited by {name!r}: {wait}")

    @property
    def retry_after(self) -> float:
        """Seconds until the same call would succeed (``decision.retry_after``)."""
        return self.decision.retry_after
