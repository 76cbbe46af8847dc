"""Redis and Redis Cluster: bucketcore next to PING, a raw EVALSHA and the peers.

The floors are a round trip that does nothing: ``PING`` and an ``EVALSHA``
of ``return 1`` with one key, sent on one redis-py connection as a
hiredis-packed command and read back (no client-side layers), so what
bucketcore adds on top of one script call is what the ratio shows. A
redis-py ``evalsha()`` of the same script is shown next to it.

Workloads: one hot key, allowed; distinct keys round-robin; one hot key,
denied (with and without the deny cache); ``acquire_many`` in batches;
``AsyncLimiter`` with concurrent tasks; and the same on a 3-master cluster
(several processes: ``suite_processes``; the footprint: ``suite_footprint``).
Peers on Redis: ``limits`` (fixed, moving and sliding windows),
``throttled-py`` (token bucket) and ``pyrate-limiter`` (token bucket state
in Redis). ``token-bucket`` (falconry) has no Redis storage.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from typing import Any

from benchmarks import bars, contenders
from benchmarks.contenders import DENIED, Policy, with_close
from benchmarks.contenders import SHARED_IN_USE as IN_USE
from benchmarks.harness import (
    BUCKETCORE,
    FLOOR,
    PEER,
    Case,
    Decide,
    Group,
    Key,
    Sizes,
    build,
    close_all,
    group_of,
    interleave,
    progress,
    time_pass,
    wrong_answers,
)
from bucketcore import AsyncLimiter, Limiter
from support.servers import Servers

TRIVIAL = b"return 1"
PING = "PING (raw connection)"
REDIS_PY_EVALSHA = bars.REDIS_PY_EVALSHA
TRY_ACQUIRE = "bucketcore redis try_acquire"
NO_DENY_CACHE = "bucketcore redis acquire, deny_cache=false"


def _prefix() -> str:
    return f"bench{uuid.uuid4().hex[:8]}:"


def prefixed(base: str, **options: Any) -> str:
    """``base`` with a key prefix of its own (and ``options``) in the query."""
    query = "&".join(f"{name}={value}" for name, value in {"prefix": _prefix(), **options}.items())
    return f"{base}?{query}"


# -- floors ---------------------------------------------------------------------


def make_raw(url: str, command: str) -> Decide:
    """One hiredis-packed command per decision on one redis-py connection."""
    import hiredis
    import redis

    client = redis.Redis.from_url(url)
    sha = client.script_load(TRIVIAL)
    pool = client.connection_pool
    conn = pool.get_connection()
    send, read, pack = conn.send_packed_command, conn.read_response, hiredis.pack_command

    if command == "PING":

        def decide(key: Key) -> object:
            send([pack(("PING",))])
            return read()
    else:

        def decide(key: Key) -> object:
            send([pack(("EVALSHA", sha, 1, key))])
            return read()

    def close() -> None:
        pool.release(conn)
        client.close()

    return with_close(decide, close)


def make_raw_script(url: str, policy: Policy) -> Decide:
    """bucketcore's own EVALSHA for each key, packed once, then sent raw.

    A diagnostic, not a floor: it splits bucketcore's cost into the server's
    share (its script) and the client's. It builds the command with the
    store's ``calls.acquire(...).command``, so it goes unavailable if that changes.
    """
    import hiredis
    import redis

    from bucketcore.backends import redis as backend

    limiter = Limiter(prefixed(url))
    store: Any = limiter.store
    limits = (policy.limit(),)
    client = redis.Redis.from_url(url)
    client.script_load(backend.SCRIPT)
    pool = client.connection_pool
    conn = pool.get_connection()
    send, read = conn.send_packed_command, conn.read_response
    packed: dict[Key, bytes] = {}

    def decide(key: Key) -> object:
        command = packed.get(key)
        if command is None:
            parts = store.calls.acquire(key, limits, 1).command
            command = packed[key] = hiredis.pack_command(tuple(parts))
        send([command])
        return read()

    def close() -> None:
        pool.release(conn)
        client.close()
        limiter.close()

    return with_close(decide, close)


def make_redis_py_evalsha(url: str, cluster: bool = False) -> Decide:
    import redis
    import redis.cluster

    client: Any = (
        redis.cluster.RedisCluster.from_url(url.replace("redis+cluster://", "redis://"))
        if cluster
        else redis.Redis.from_url(url)
    )
    sha = client.script_load(TRIVIAL)
    evalsha = client.evalsha
    return with_close(lambda key: evalsha(sha, 1, key), client.close)


# -- bucketcore -------------------------------------------------------------------


def make_batch(url: str, policy: Policy, batch: int) -> Decide:
    """``acquire_many`` of ``batch`` requests at a time (one pipeline each)."""
    limiter = Limiter(url)
    limit = policy.limit()
    acquire_many = limiter.acquire_many

    def over(keys: list[Key]) -> float:
        started = time.perf_counter_ns()
        for start in range(0, len(keys), batch):
            acquire_many([(key, limit, 1) for key in keys[start : start + batch]])
        return (time.perf_counter_ns() - started) / len(keys)

    decide = with_close(lambda key: acquire_many([(key, limit, 1)]), limiter.close)
    decide.over = over  # type: ignore[attr-defined]
    return decide


def make_async(url: str, policy: Policy, tasks: int) -> Decide:
    """``AsyncLimiter.acquire`` from ``tasks`` concurrent tasks on one event loop."""
    loop = asyncio.new_event_loop()

    async def opened() -> AsyncLimiter:
        return AsyncLimiter(url)

    limiter = loop.run_until_complete(opened())
    limit = policy.limit()

    async def worker(keys: list[Key]) -> None:
        for key in keys:
            await limiter.acquire(key, limit)

    async def all_of(keys: list[Key]) -> None:
        await asyncio.gather(*(worker(keys[i::tasks]) for i in range(tasks)))

    def over(keys: list[Key]) -> float:
        started = time.perf_counter_ns()
        loop.run_until_complete(all_of(keys))
        return (time.perf_counter_ns() - started) / len(keys)

    def close() -> None:
        loop.run_until_complete(limiter.close())
        loop.close()

    decide = with_close(lambda key: loop.run_until_complete(limiter.acquire(key, limit)), close)
    decide.over = over  # type: ignore[attr-defined]
    return decide


# -- peers on Redis -----------------------------------------------------------------


def peer_cases(base: str, policy: Policy, *, cluster: bool = False) -> list[Case]:
    host_port = base.split("://", 1)[1].split("/", 1)[0]
    if cluster:
        uri = f"redis+cluster://{host_port}"
        return [
            Case(
                f"{name} (Redis Cluster)",
                PEER,
                lambda s=strategy: contenders.make_limits(policy, s, uri, _prefix()),  # type: ignore[misc]
            )
            for name, strategy in ((contenders.LIMITS_FIXED, "fixed"),)
        ]

    def throttled() -> Decide:
        from throttled import store

        return contenders.make_throttled(policy, store.RedisStore(server=f"{base}/0"))

    def pyrate() -> Decide:
        import redis

        return contenders.make_pyrate(policy, redis_client=redis.Redis.from_url(f"{base}/0"))

    uri = f"redis://{host_port}"
    return [
        Case(f"{contenders.THROTTLED} (Redis)", PEER, throttled),
        Case(f"{contenders.PYRATE} (Redis)", PEER, pyrate),
        *(
            Case(
                f"{name} (Redis)",
                PEER,
                lambda s=strategy: contenders.make_limits(policy, s, uri, _prefix()),  # type: ignore[misc]
            )
            for name, strategy in (
                (contenders.LIMITS_FIXED, "fixed"),
                (contenders.LIMITS_MOVING, "moving"),
                (contenders.LIMITS_SLIDING, "sliding"),
            )
        ),
    ]


def _cases(base: str, sizes: Sizes, policy: Policy, *, peers: bool, cluster: bool) -> list[Case]:
    url = base if cluster else f"{base}/0"
    cases = []
    if not cluster:
        cases += [
            Case(PING, FLOOR, lambda: make_raw(url, "PING")),
            Case(bars.REDIS_EVALSHA, FLOOR, lambda: make_raw(url, "EVALSHA")),
            Case(bars.REDIS_RAW_SCRIPT, FLOOR, lambda: make_raw_script(url, policy)),
        ]
    cases += [
        Case(REDIS_PY_EVALSHA, FLOOR, lambda: make_redis_py_evalsha(url, cluster)),
        Case(
            bars.REDIS_SINGLE,
            BUCKETCORE,
            lambda: contenders.make_bucketcore(policy, prefixed(url), full=True),
        ),
        Case(
            TRY_ACQUIRE,
            BUCKETCORE,
            lambda: contenders.make_bucketcore(policy, prefixed(url)),
        ),
        Case(
            bars.REDIS_BATCH.replace("(batch)", f"(batches of {sizes.batch})"),
            BUCKETCORE,
            lambda: make_batch(prefixed(url), policy, sizes.batch),
        ),
        Case(
            bars.REDIS_ASYNC.replace("(tasks)", f"({sizes.async_tasks} tasks)"),
            BUCKETCORE,
            lambda: make_async(prefixed(url), policy, sizes.async_tasks),
        ),
    ]
    if peers:
        cases += peer_cases(base, policy, cluster=cluster)
    return cases


def flush(url: str) -> None:
    """Empty a standalone server: a peer without a key prefix option starts afresh."""
    import redis

    client = redis.Redis.from_url(url.split("?", 1)[0])
    client.flushall()
    client.close()


def _measure(
    group_id: str,
    title: str,
    suite: str,
    cases: list[Case],
    keys: list[Key],
    sizes: Sizes,
    reference: str,
    note: str = "",
    fresh: str | None = None,
    expect_allowed: bool = True,
) -> Group:
    progress(f"  {suite}: {title}")
    if fresh is not None:  # throttled-py and pyrate-limiter would share last group's keys
        flush(fresh)
    built = build(cases)
    try:
        times = interleave(built, sizes.rounds, lambda d: time_pass(d, keys))
        wrong = wrong_answers(built, keys[0], allowed=expect_allowed)
    finally:
        close_all(built)
    if wrong:
        note = f"{note}; answered the other way: {', '.join(wrong)}".lstrip("; ")
    group = group_of(group_id, title, suite, reference, built, times, note=note)
    # The bars name the batch and async cases without their sizes.
    for row in group.rows:
        for generic in (bars.REDIS_BATCH, bars.REDIS_ASYNC):
            if row["case"].startswith(generic.split(" (")[0]):
                row["bar_case"] = generic
    return group


def run(servers: Servers, sizes: Sizes) -> list[Group]:
    """The Redis and cluster groups."""
    base = f"redis://127.0.0.1:{servers.standalone.port}"
    hot = ["hot"] * sizes.store_calls
    distinct = [f"user-{i}" for i in range(sizes.store_calls)]
    batch_note = (
        f"acquire_many: {sizes.batch} requests per pipeline; AsyncLimiter: "
        f"{sizes.async_tasks} tasks on one event loop; per decision = wall time / decisions"
    )
    groups = [
        _measure(
            "redis.hot",
            "one hot key, allowed",
            "redis",
            _cases(base, sizes, IN_USE, peers=True, cluster=False),
            hot,
            sizes,
            bars.REDIS_EVALSHA,
            batch_note,
            fresh=base,
        ),
        _measure(
            "redis.many",
            f"{len(distinct):,} distinct keys, allowed",
            "redis",
            _cases(base, sizes, IN_USE, peers=True, cluster=False),
            distinct,
            sizes,
            bars.REDIS_EVALSHA,
            batch_note,
            fresh=base,
        ),
        denied(base, sizes, hot),
    ]
    groups += resident(base, sizes)
    if servers.cluster is not None:
        url = servers.cluster.url
        groups += [
            _measure(
                "cluster.hot",
                "one hot key, allowed",
                "cluster",
                _cases(url, sizes, IN_USE, peers=True, cluster=True),
                hot,
                sizes,
                REDIS_PY_EVALSHA,
                batch_note,
            ),
            _measure(
                "cluster.many",
                f"{len(distinct):,} distinct keys (spread over the 3 masters), allowed",
                "cluster",
                _cases(url, sizes, IN_USE, peers=False, cluster=True),
                distinct,
                sizes,
                REDIS_PY_EVALSHA,
                batch_note,
            ),
        ]
    return groups


def _filled(make: Any, keys: list[Key], policy: Policy, batch: int) -> Any:
    """A bucketcore decider whose warm-up writes ``keys`` in pipelines (``fill``)."""

    def build() -> Decide:
        decide = make()
        limiter = Limiter(decide.url)
        limit = policy.limit()

        def fill() -> None:
            for start in range(0, len(keys), batch):
                limiter.acquire_many([(key, limit, 1) for key in keys[start : start + batch]])
            limiter.close()

        decide.fill = fill  # type: ignore[attr-defined]
        return decide  # type: ignore[no-any-return]

    return build


def resident(base: str, sizes: Sizes) -> list[Group]:
    """One decision's cost as resident buckets grow, on random resident keys."""
    url = f"{base}/0"
    groups = []
    for count in sizes.store_resident:
        keys = [f"user-{i}" for i in range(count)]
        rng = random.Random(count)
        measured = [keys[rng.randrange(count)] for _ in range(sizes.store_calls)]
        prefix_url = prefixed(url)

        def single(prefix_url: str = prefix_url) -> Decide:
            decide = contenders.make_bucketcore(IN_USE, prefix_url, full=True)
            decide.url = prefix_url  # type: ignore[attr-defined]
            return decide

        def raw() -> Decide:
            decide = make_raw(url, "EVALSHA")
            decide.fill = lambda: None  # type: ignore[attr-defined]  # nothing to make resident
            return decide

        cases = [
            Case(bars.REDIS_EVALSHA, FLOOR, raw),
            Case(bars.REDIS_SINGLE, BUCKETCORE, _filled(single, keys, IN_USE, 100)),
        ]
        group = _measure(
            f"redis.resident.{count}",
            f"redis: {count:,} resident bucket{'s' if count != 1 else ''}, allowed",
            "scaling",
            cases,
            measured,
            sizes,
            bars.REDIS_EVALSHA,
            "the buckets are written with acquire_many first; timed calls pick resident keys",
        )
        group.x = float(count)
        groups.append(group)
        flush(url)  # the next count starts from an empty server
    return groups


def denied(base: str, sizes: Sizes, hot: list[Key]) -> Group:
    url = f"{base}/0"
    cases = [
        Case(PING, FLOOR, lambda: make_raw(url, "PING")),
        Case(bars.REDIS_EVALSHA, FLOOR, lambda: make_raw(url, "EVALSHA")),
        Case(
            "bucketcore redis acquire, deny cache (default)",
            BUCKETCORE,
            lambda: contenders.make_bucketcore(DENIED, prefixed(url), full=True),
        ),
        Case(
            NO_DENY_CACHE,
            BUCKETCORE,
            lambda: contenders.make_bucketcore(
                DENIED, prefixed(url, deny_cache="false"), full=True
            ),
        ),
        *peer_cases(base, DENIED),
    ]
    return _measure(
        "redis.denied",
        "one hot key, denied",
        "redis",
        cases,
        hot,
        sizes,
        bars.REDIS_EVALSHA,
        "the first call takes the one token of the day; every timed call is denied",
        fresh=base,
        expect_allowed=False,
    )


def available() -> str | None:
    """Why the suite cannot run here, or None."""
    try:
        import bucketcore.backends.redis  # noqa: F401
    except Exception as exc:
        return f"redis:// not importable ({type(exc).__name__}: {exc})"
    return None
