"""``redis://`` and ``redis+cluster://``: exact limits shared by many processes.

Every call is decided by ``lua/gcra.lua`` in one ``EVALSHA``: all limits of
the call, all-or-nothing, with the server's ``TIME`` as the only clock
(``acquire_many`` and concurrent asyncio calls share script runs, each call
still decided on its own). The script answers each bucket's debt at that
instant and the client derives every ``Decision`` field from it with
``bucketcore._gcra.evaluate``, the very function the memory store uses, so
the two backends cannot disagree.

Keys are ``<prefix>{<escaped key>}<limit identity>``: the hash tag holds the
escaped user key, so every limit of one key lands in one cluster slot, and
no two (limit, key) pairs can share a Redis key (see ``escape_key``).

The decision command is never retried: redis-py's ``Retry`` would re-run a
script whose reply was lost and charge twice. Only connection set-up is
retried (``connect_retries``); ``NOSCRIPT`` means the script did not run, so
it is loaded and the command sent once more.

Exactness: the script keeps a bucket's theoretical arrival time as whole
microseconds plus a remainder in GCRA units, all integers below 2^53 in
Lua's doubles. That holds for every limit whose burst refills within
2^50 microseconds (about 35 years) and whose rate gives at most 2^52 units
per microsecond (``1000 * units_per_ns``, i.e. ``tokens / gcd(tokens,
period_ns)`` at most about 4.5e12); other limits raise ``ConfigurationError``
on first use. Requires Redis 6.0+ (or Valkey).

What is where, in the order each imports the one before (docs/design.md §8):

- ``script``: the Lua script, loaded once; per-limit arguments; NOSCRIPT.
- ``errors``: redis-py's exceptions as bucketcore's, in one table.
- ``options``: the URL's and keywords' options; the client's kwargs.
- ``policy``: answers without Redis: the deny cache, the failure policy.
- ``calls``: each call as an object: its command, its reply made a Decision.
- ``runs``: many calls in one script run (``acquire_many``, asyncio).
- ``breaker``: the circuit breaker (I/O-free): no waiting on a Redis that is down.
- ``sentinel``: ``redis+sentinel://`` URLs, and following the sentinels' failovers.
- ``sync`` and ``aio``: ``RedisStore`` and ``AsyncRedisStore``, which only
  send and receive.

Neither ``open_store`` nor a store connects before its first call:

>>> from urllib.parse import urlsplit
>>> from bucketcore import Limit
>>> store = open_store(urlsplit("redis://localhost:1/0?prefix=app:&deny_cache=off"), {}, None)
>>> store.calls.acquire("alice", (Limit(10, 1.0, name="api"),), 1).command[3]
b'app:{alice}n:api'
>>> store.close()
"""

from __future__ import annotations

from typing import Any
from urllib.parse import SplitResult

from bucketcore._urls import redacted
from bucketcore.errors import ConfigurationError
from bucketcore.store import Clock

try:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.asyncio.sentinel
    import redis.cluster
    import redis.sentinel
except ImportError as exc:  # tests/test_redis.py hides redis-py to check this
    raise ConfigurationError(
        f"the Redis backend needs redis-py: pip install 'bucketcore[redis]' ({exc})"
    ) from exc

from .aio import AsyncRedisStore
from .calls import escape_key
from .errors import ERRORS, map_error
from .options import read_settings, read_url
from .script import SCRIPT, SCRIPT_SHA
from .sentinel import sentinel_parts
from .sync import RedisStore

__all__ = [
    "SCRIPT",
    "SCRIPT_SHA",
    "AsyncRedisStore",
    "RedisStore",
    "escape_key",
    "map_error",
    "open_async_store",
    "open_store",
]


def open_store(url: SplitResult, options: dict[str, object], clock: Clock | None) -> RedisStore:
    """``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://``, ``redis+sentinel://``.

    (And ``rediss+cluster://``, ``rediss+sentinel://``.)

    >>> from urllib.parse import urlsplit
    >>> open_store(urlsplit("redis://localhost/0?on_error=maybe"), {}, None)
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: option on_error must be one of ...
    """
    if url.scheme.lower().endswith("+sentinel"):
        settings = read_settings(url, options, clock)
        sentinels, service, to_sentinels, to_master = sentinel_parts(url, settings)
        manager: Any = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            sentinels, sentinel_kwargs=to_sentinels, **to_master
        )
        store = RedisStore(manager.master_for(service), **settings.store_options())
        store._owned = True
        return store
    scheme, base, kwargs, settings = read_url(url, options, clock)
    try:
        if scheme.endswith("+cluster"):
            client: Any = redis.cluster.RedisCluster.from_url(base, **kwargs)
        else:
            client = redis.Redis.from_url(base, **kwargs)
    except ERRORS as exc:
        raise map_error(exc) from exc
    except ValueError as exc:
        raise ConfigurationError(f"bad Redis URL {redacted(url)!r}: {exc}") from exc
    store = RedisStore(client, **settings.store_options())
    store._owned = True
    return store


def open_async_store(
    url: SplitResult, options: dict[str, object], clock: Clock | None
) -> AsyncRedisStore:
    """The ``redis.asyncio`` twin of ``open_store`` (clients connect lazily).

    >>> from urllib.parse import urlsplit
    >>> open_async_store(urlsplit("redis://localhost/0?prefix=a{b}"), {}, None)
    Traceback (most recent call last):
    ...
    bucketcore.errors.ConfigurationError: option prefix must be at most 256 bytes ...
    """
    if url.scheme.lower().endswith("+sentinel"):
        settings = read_settings(url, options, clock)
        sentinels, service, to_sentinels, to_master = sentinel_parts(url, settings)
        manager = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            sentinels, sentinel_kwargs=to_sentinels, **to_master
        )
        store = AsyncRedisStore(manager.master_for(service), **settings.store_options())
        store._owned = True
        return store
    scheme, base, kwargs, settings = read_url(url, options, clock)
    try:
        if scheme.endswith("+cluster"):
            client: Any = redis.asyncio.cluster.RedisCluster.from_url(base, **kwargs)
        else:
            client = redis.asyncio.Redis.from_url(base, **kwargs)
    except ValueError as exc:
        raise ConfigurationError(f"bad Redis URL {redacted(url)!r}: {exc}") from exc
    store = AsyncRedisStore(client, **settings.store_options())
    store._owned = True
    return store
