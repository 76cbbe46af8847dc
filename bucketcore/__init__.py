"""bucketcore: an exact, embedded token-bucket rate limiter.

>>> from bucketcore import Limit, Limiter
>>> limiter = Limiter("memory://")
>>> limiter.acquire("alice", Limit.parse("7/30s")).remaining
6
"""

from bucketcore.decision import Decision
from bucketcore.errors import (
    BucketError,
    ConfigurationError,
    CorruptState,
    RateLimited,
    StoreClosed,
    StoreError,
    StoreLocked,
    StoreUnavailable,
)
from bucketcore.integrations.guard import rate_limited
from bucketcore.limit import Limit
from bucketcore.limiter import AsyncLimiter, Limiter
from bucketcore.store import AsyncStore, Store

__all__ = [
    "AsyncLimiter",
    "AsyncStore",
    "BucketError",
    "ConfigurationError",
    "CorruptState",
    "Decision",
    "Limit",
    "Limiter",
    "RateLimited",
    "Store",
    "StoreClosed",
    "StoreError",
    "StoreLocked",
    "StoreUnavailable",
    "rate_limited",
]

__version__ = "0.1.0"
