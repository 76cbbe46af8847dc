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

__all__ = [
    "BucketError",
    "ConfigurationError",
    "CorruptState",
    "StoreClosed",
    "StoreError",
    "StoreLocked",
    "StoreUnavailable",
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
