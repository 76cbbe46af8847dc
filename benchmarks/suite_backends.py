"""Every backend on the same workloads, in one group each: the user's choice.

memory:// against rocksdb:// (``wal``, ``periodic``, ``sync``) and Redis
(single calls, ``acquire_many`` in batches, ``AsyncLimiter`` with tasks) and
Redis Cluster, each deciding the same keys with ``acquire``; every row is
also a ratio to memory://. It needs the RocksDB backend and the servers, so
the runner calls it inside the Redis suite's servers.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import bars, contenders, suite_redis, suite_rocksdb
from benchmarks.contenders import DENIED, SHARED_IN_USE, Policy
from benchmarks.harness import (
    BUCKETCORE,
    Case,
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
from support.servers import Servers

SUITE = "backends"


def _cases(
    servers: Servers, data: suite_rocksdb.DataDir, sizes: Sizes, policy: Policy
) -> list[Case]:
    redis_url = f"redis://127.0.0.1:{servers.standalone.port}/0"

    def rocksdb(mode: str) -> Case:
        return Case(
            f"rocksdb {mode}",
            BUCKETCORE,
            lambda: contenders.make_bucketcore(
                policy, f"rocksdb://{data.fresh(mode)}?durability={mode}", full=True
            ),
        )

    cases = [
        Case(bars.MEMORY_STORE, BUCKETCORE, lambda: contenders.make_bucketcore(policy, full=True)),
        rocksdb("wal"),
        rocksdb("periodic"),
        rocksdb("sync"),
        Case(
            "redis acquire",
            BUCKETCORE,
            lambda: contenders.make_bucketcore(policy, suite_redis.prefixed(redis_url), full=True),
        ),
        Case(
            f"redis acquire_many ({sizes.batch} a batch)",
            BUCKETCORE,
            lambda: suite_redis.make_batch(suite_redis.prefixed(redis_url), policy, sizes.batch),
        ),
        Case(
            f"redis AsyncLimiter ({sizes.async_tasks} tasks)",
            BUCKETCORE,
            lambda: suite_redis.make_async(
                suite_redis.prefixed(redis_url), policy, sizes.async_tasks
            ),
        ),
    ]
    if servers.cluster is not None:
        cluster_url = servers.cluster.url
        cases += [
            Case(
                "cluster acquire",
                BUCKETCORE,
                lambda: contenders.make_bucketcore(
                    policy, suite_redis.prefixed(cluster_url), full=True
                ),
            ),
            Case(
                f"cluster acquire_many ({sizes.batch} a batch)",
                BUCKETCORE,
                lambda: suite_redis.make_batch(
                    suite_redis.prefixed(cluster_url), policy, sizes.batch
                ),
            ),
        ]
    return cases


def _group(
    group_id: str,
    title: str,
    cases: list[Case],
    keys: list[Key],
    sizes: Sizes,
    allowed: bool = True,
) -> Group:
    progress(f"  {SUITE}: {title}")
    built = build(cases)
    try:
        times = interleave(built, sizes.rounds, lambda d: time_pass(d, keys))
        wrong = wrong_answers(built, keys[0], allowed=allowed)
    finally:
        close_all(built)
    note = "acquire on every backend; x ref is the ratio to memory://"
    if wrong:
        note += f"; answered the other way: {', '.join(wrong)}"
    return group_of(group_id, title, SUITE, bars.MEMORY_STORE, built, times, note=note)


def run(servers: Servers, sizes: Sizes, root: Path | None = None) -> list[Group]:
    hot = ["hot"] * sizes.store_calls
    distinct = [f"user-{i}" for i in range(sizes.store_calls)]
    with suite_rocksdb.data_dir(root) as data:
        return [
            _group(
                "backends.hot",
                "one hot key, allowed",
                _cases(servers, data, sizes, SHARED_IN_USE),
                hot,
                sizes,
            ),
            _group(
                "backends.many",
                f"{len(distinct):,} distinct keys, allowed",
                _cases(servers, data, sizes, SHARED_IN_USE),
                distinct,
                sizes,
            ),
            _group(
                "backends.denied",
                "one hot key, denied (Redis: with its deny cache)",
                _cases(servers, data, sizes, DENIED),
                hot,
                sizes,
                allowed=False,
            ),
        ]
