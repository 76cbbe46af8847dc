"""The store contract every backend implements, and the URL scheme table.

A store makes whole decisions, because a remote store (Redis) must decide
atomically on its side. The ``Limiter`` validates every argument first, so a
store may trust them: ``key`` is ``str`` or ``bytes`` of at most 4096 bytes,
``limits`` is a non-empty tuple of ``Limit`` with distinct identities, and
``cost``/``tokens`` are ints >= 1.

>>> from bucketcore.store import open_store
>>> store = open_store("memory://")
>>> store.try_acquire("alice", (Limit(1, 1.0),), 1)
True
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable
from urllib.parse import SplitResult, parse_qsl

from bucketcore._keys import Key
from bucketcore._urls import redacted, split_url
from bucketcore.decision import Decision
from bucketcore.errors import ConfigurationError
from bucketcore.limit import Limit

__all__ = [
    "SCHEMES",
    "AsyncStore",
    "CheckedCalls",
    "Clock",
    "Request",
    "Store",
    "SyncStoreAsAsync",
    "open_async_store",
    "open_store",
    "split_options",
]

Clock = Callable[[], int]
Request = tuple[Key, tuple[Limit, ...], int]
# checked_try_acquire, checked_acquire, checked_peek: the Limiter's own signatures
CheckedCalls = tuple[Callable[..., bool], Callable[..., Decision], Callable[..., Decision]]


@runtime_checkable
class Store(Protocol):
    """What a ``Limiter`` needs from a backend."""

    def acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        """Take ``cost`` from every limit's bucket, or from none."""

    def try_acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> bool:
        """``acquire(...).allowed``, as fast as the backend can make it."""

    def peek(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        """What ``acquire`` would answer now, consuming nothing."""

    def acquire_many(self, requests: Sequence[Request]) -> list[Decision]:
        """Several independent acquires (one round trip on a remote store)."""

    def refund(self, key: Key, limits: tuple[Limit, ...], tokens: int) -> None:
        """Give ``tokens`` back to every limit's bucket, capped at full."""

    def drain(self, key: Key, limits: tuple[Limit, ...], seconds_ns: int) -> None:
        """Hold every limit's bucket empty for ``seconds_ns`` (``_gcra.drained``)."""

    def reset(self, key: Key, limits: tuple[Limit, ...]) -> None:
        """Make every limit's bucket full."""

    def close(self) -> None:
        """Flush and release what the store holds; idempotent."""

    # One optional method, which the Limiter asks any store for:
    #
    #     def checked_calls(self) -> CheckedCalls | None
    #
    # ``checked_try_acquire``, ``checked_acquire`` and ``checked_peek``: they
    # take ``Limiter.try_acquire``'s arguments (``key, *limits, cost=1``) and
    # validate them as the Limiter would, so it can hand its calls straight
    # to them (memory:// answers in ~200 ns, less than the Limiter's own call
    # layer). None, or no such method: the Limiter validates and calls the
    # methods above.


@runtime_checkable
class AsyncStore(Protocol):
    """The ``Store`` contract as coroutines, for ``AsyncLimiter``."""

    async def acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision: ...

    async def try_acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> bool: ...

    async def peek(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision: ...

    async def acquire_many(self, requests: Sequence[Request]) -> list[Decision]: ...

    async def refund(self, key: Key, limits: tuple[Limit, ...], tokens: int) -> None: ...

    async def drain(self, key: Key, limits: tuple[Limit, ...], seconds_ns: int) -> None: ...

    async def reset(self, key: Key, limits: tuple[Limit, ...]) -> None: ...

    async def close(self) -> None: ...


class SyncStoreAsAsync:
    """An ``AsyncStore`` over a synchronous store.

    A store that answers in microseconds (memory, rocksdb ``wal``) is called
    on the event loop: a worker thread would cost far more than the call. A
    store whose changing calls wait for I/O says so with a true ``blocking``
    attribute (rocksdb ``sync`` waits for an fsync); those calls then run in
    a worker thread (``asyncio.to_thread``), so the loop goes on meanwhile.
    ``peek`` changes nothing, so it never waits for an fsync.

    >>> from bucketcore.memory import MemoryStore
    >>> asyncio.run(SyncStoreAsAsync(MemoryStore()).try_acquire("k", (Limit(1, 1),), 1))
    True
    """

    def __init__(self, store: Store) -> None:
        self.sync_store = store
        self.blocking = bool(getattr(store, "blocking", False))

    async def acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        if self.blocking:
            return await asyncio.to_thread(self.sync_store.acquire, key, limits, cost)
        return self.sync_store.acquire(key, limits, cost)

    async def try_acquire(self, key: Key, limits: tuple[Limit, ...], cost: int) -> bool:
        if self.blocking:
            return await asyncio.to_thread(self.sync_store.try_acquire, key, limits, cost)
        return self.sync_store.try_acquire(key, limits, cost)

    async def peek(self, key: Key, limits: tuple[Limit, ...], cost: int) -> Decision:
        return self.sync_store.peek(key, limits, cost)

    async def acquire_many(self, requests: Sequence[Request]) -> list[Decision]:
        if self.blocking:
            return await asyncio.to_thread(self.sync_store.acquire_many, requests)
        return self.sync_store.acquire_many(requests)

    async def refund(self, key: Key, limits: tuple[Limit, ...], tokens: int) -> None:
        if self.blocking:
            await asyncio.to_thread(self.sync_store.refund, key, limits, tokens)
        else:
            self.sync_store.refund(key, limits, tokens)

    async def drain(self, key: Key, limits: tuple[Limit, ...], seconds_ns: int) -> None:
        if self.blocking:
            await asyncio.to_thread(self.sync_store.drain, key, limits, seconds_ns)
        else:
            self.sync_store.drain(key, limits, seconds_ns)

    async def reset(self, key: Key, limits: tuple[Limit, ...]) -> None:
        if self.blocking:
            await asyncio.to_thread(self.sync_store.reset, key, limits)
        else:
            self.sync_store.reset(key, limits)

    async def close(self) -> None:
        if self.blocking:
            await asyncio.to_thread(self.sync_store.close)
        else:
            self.sync_store.close()


# scheme -> (module, extra to install). Each module has
# ``open_store(url, options, clock)`` and may have ``open_async_store``.
SCHEMES: dict[str, tuple[str, str | None]] = {
    "memory": ("bucketcore.memory", None),
    "rocksdb": ("bucketcore.backends.rocksdb", "rocksdb"),
    "lmdb": ("bucketcore.backends.lmdb", "lmdb"),
    "redis": ("bucketcore.backends.redis", "redis"),
    "rediss": ("bucketcore.backends.redis", "redis"),
    "unix": ("bucketcore.backends.redis", "redis"),
    "redis+cluster": ("bucketcore.backends.redis", "redis"),
    "rediss+cluster": ("bucketcore.backends.redis", "redis"),
    "valkey": ("bucketcore.backends.redis", "redis"),
    "valkeys": ("bucketcore.backends.redis", "redis"),
    "redis+sentinel": ("bucketcore.backends.redis", "redis"),
    "rediss+sentinel": ("bucketcore.backends.redis", "redis"),
}


def split_options(url: SplitResult, options: dict[str, object]) -> dict[str, object]:
    """The URL's query options merged with keyword options (keywords win).

    A query option given twice is an error, as is one given both ways.

    >>> split_options(split_url("redis://h/0?prefix=a"), {"timeout": 1.0})
    {'prefix': 'a', 'timeout': 1.0}
    """
    merged: dict[str, object] = {}
    for name, text in parse_qsl(url.query, keep_blank_values=True, strict_parsing=False):
        if name in merged:
            raise ConfigurationError(f"option {name!r} is given twice in {redacted(url)!r}")
        merged[name] = text
    for name, value in options.items():
        if name in merged:
            raise ConfigurationError(f"option {name!r} is given in the URL and as a keyword")
        merged[name] = value
    return merged


def _backend(url: str) -> tuple[SplitResult, object]:
    parts = split_url(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        known = ", ".join(f"{name}://" for name in SCHEMES)
        raise ConfigurationError(
            f"unknown store URL scheme in {redacted(url)!r}; use one of {known}"
        )
    module_name, extra = SCHEMES[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or ""
        if extra is None or missing == "bucketcore" or missing.startswith("bucketcore."):
            raise  # our own module is missing: no extra would bring it back
        raise ConfigurationError(
            f"{scheme}:// needs an optional dependency: pip install 'bucketcore[{extra}]' ({exc})"
        ) from exc
    return parts, module


def open_store(
    url: str, options: dict[str, object] | None = None, clock: Clock | None = None
) -> Store:
    """Open the store a URL names; unknown schemes or options raise.

    >>> open_store("memory://").try_acquire("k", (Limit(1, 1),), 1)
    True
    """
    parts, module = _backend(url)
    store: Store = module.open_store(parts, dict(options or {}), clock)  # type: ignore[attr-defined]
    return store


def open_async_store(
    url: str, options: dict[str, object] | None = None, clock: Clock | None = None
) -> AsyncStore:
    """The ``AsyncStore`` for a URL: native where the backend has one.

    >>> import asyncio
    >>> asyncio.run(open_async_store("memory://").try_acquire("k", (Limit(1, 1),), 1))
    True
    """
    parts, module = _backend(url)
    opener = getattr(module, "open_async_store", None)
    if opener is not None:
        store: AsyncStore = opener(parts, dict(options or {}), clock)
        return store
    return SyncStoreAsAsync(module.open_store(parts, dict(options or {}), clock))  # type: ignore[attr-defined]
