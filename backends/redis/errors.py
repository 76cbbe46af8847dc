"""redis-py's exceptions as ``bucketcore.errors``, decided in one table.

Every exception class redis-py defines is named in ``KINDS`` with what it
means for a caller (tests/test_redis.py fails if redis-py grows one that is
not): the store cannot be reached (``StoreUnavailable``, which the failure
policy may answer), it refused us, or it failed. ``map_error`` walks the
exception's class hierarchy to its nearest named class.
"""

from __future__ import annotations

import redis.exceptions

from bucketcore.errors import BucketError, CorruptState, StoreError, StoreUnavailable

__all__ = ["ERRORS", "KINDS", "chained", "is_redirect", "map_error"]

ERRORS = (redis.exceptions.RedisError, redis.exceptions.RedisClusterException, OSError)
"""What a redis-py call can raise that ``map_error`` turns into a bucketcore error."""

_UNAVAILABLE, _REFUSED, _FAILED, _REPLY = "unavailable", "refused", "failed", "reply"

# By name: some classes are newer than the oldest redis-py we support.
_KINDS_BY_NAME = {
    "RedisError": _FAILED,
    # Unreachable, timed out, loading, out of connections, failing over.
    "ConnectionError": _UNAVAILABLE,
    "TimeoutError": _UNAVAILABLE,
    "BusyLoadingError": _UNAVAILABLE,
    "MaxConnectionsError": _UNAVAILABLE,
    "ExternalAuthProviderError": _UNAVAILABLE,  # the provider may answer next time
    "ReadOnlyError": _UNAVAILABLE,  # a replica that was a master a moment ago
    "ClusterError": _FAILED,
    "ClusterDownError": _UNAVAILABLE,
    "MasterDownError": _UNAVAILABLE,
    "TryAgainError": _UNAVAILABLE,
    "AskError": _UNAVAILABLE,  # and MOVED: a slot that kept moving while resharding
    "MovedError": _UNAVAILABLE,
    "RedisClusterException": _UNAVAILABLE,
    "SlotNotCoveredError": _UNAVAILABLE,
    "CrossSlotTransactionError": _UNAVAILABLE,  # as every RedisClusterException so far
    "InvalidPipelineStack": _UNAVAILABLE,
    "ClusterCrossSlotError": _FAILED,
    # Credentials or permissions: retrying will not help.
    "AuthenticationError": _REFUSED,
    "AuthorizationError": _REFUSED,
    "NoPermissionError": _REFUSED,
    "AuthenticationWrongNumberOfArgsError": _REFUSED,
    # The server answered with an error: its text says whether a bucket is corrupt.
    "ResponseError": _REPLY,
    "NoScriptError": _REPLY,  # recovered before it gets here (script.reload_missing)
    "OutOfMemoryError": _REPLY,
    "ExecAbortError": _REPLY,
    "ModuleError": _REPLY,
    "NoSuchFieldsetError": _REPLY,
    "InvalidResponse": _FAILED,
    "DataError": _FAILED,
    "PubSubError": _FAILED,
    "WatchError": _FAILED,
    "LockError": _FAILED,
    "LockNotOwnedError": _FAILED,
}

KINDS: dict[type[BaseException], str] = {
    getattr(redis.exceptions, name): kind
    for name, kind in _KINDS_BY_NAME.items()
    if hasattr(redis.exceptions, name)
}
"""Each redis-py exception class and what it means: unavailable, refused, failed, reply."""
KINDS[OSError] = _UNAVAILABLE  # a socket error redis-py let through


def map_error(exc: BaseException) -> BucketError:
    """The bucketcore error for a redis-py (or socket) error; chain it ``from exc``.

    >>> type(map_error(redis.exceptions.ConnectionError("refused"))).__name__
    'StoreUnavailable'
    >>> type(map_error(redis.exceptions.ResponseError("WRONGTYPE not a hash"))).__name__
    'CorruptState'
    >>> type(map_error(redis.exceptions.AuthenticationError("no"))).__name__
    'StoreError'
    """
    kind = next((KINDS[cls] for cls in type(exc).__mro__ if cls in KINDS), _FAILED)
    if kind == _UNAVAILABLE:
        return StoreUnavailable(f"Redis is unavailable: {exc}")
    if kind == _REFUSED:
        return StoreError(f"Redis refused the credentials or the command: {exc}")
    if kind == _REPLY:
        text = str(exc)
        if "BUCKETCORE corrupt" in text or text.startswith("WRONGTYPE"):
            return CorruptState(f"a bucket key holds something else: {exc}")
    return StoreError(f"Redis failed: {exc}")


def chained(exc: BaseException) -> BucketError:
    """``map_error(exc)`` with ``exc`` as its cause, to hand on rather than raise.

    >>> chained(OSError("reset")).__cause__
    OSError('reset')
    """
    error = map_error(exc)
    error.__cause__ = exc
    return error


def is_redirect(exc: BaseException) -> bool:
    """MOVED, ASK or TRYAGAIN: the script did not run on that node; follow it.

    >>> is_redirect(redis.exceptions.MovedError("3999 127.0.0.1:6381"))
    True
    """
    return isinstance(exc, redis.exceptions.AskError | redis.exceptions.TryAgainError)
