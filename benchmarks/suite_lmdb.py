"""lmdb:// next to memory://, one Redis decision and pyrate-limiter's SQLite bucket.

One process deciding, one hot key and distinct keys: what one ``acquire``
costs on each store that can be shared (memory:// cannot: it is the
per-process ceiling). The floor is a raw LMDB write transaction (get, put
of a record of the backend's size, commit) through py-lmdb, opened as the
backend opens it. The peer is the one that shares limits between the
processes of a host without a server: pyrate-limiter's ``SQLiteBucket``
with its file lock (``contenders.make_pyrate_sqlite``). The Redis case
needs our own server (``support/servers.py``); without one it is left out
and its bars are not measured. Stores live under ``.bench-data/``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from benchmarks import bars, contenders
from benchmarks.contenders import SHARED_IN_USE, with_close
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
from benchmarks.suite_redis import prefixed
from support.servers import Servers

SUITE = "lmdb"
RECORD_BYTES = 25  # backends/lmdb/records.py: struct "<BqQQ"
RAW_TXN = f"raw LMDB write transaction (get + put {RECORD_BYTES} B + commit)"
LMDB_PERIODIC = "lmdb periodic acquire"


def available() -> str | None:
    """Why the suite cannot run here, or None."""
    try:
        import bucketcore.backends.lmdb  # noqa: F401
    except Exception as exc:
        return f"lmdb:// not importable ({type(exc).__name__}: {exc})"
    return None


def fresh_path(root: Path, name: str) -> str:
    """A new absolute directory name under ``root`` (made by whoever opens it)."""
    root.mkdir(parents=True, exist_ok=True)
    return str((root / f"{name}-{uuid.uuid4().hex[:8]}").resolve())


def make_raw_txn(path: str) -> Decide:
    """One py-lmdb write transaction per decision, opened as ``backends/lmdb/env.py`` does."""
    import lmdb

    env = lmdb.open(
        path, map_size=1 << 25, writemap=True, sync=False, metasync=False, max_spare_txns=0
    )
    begin = env.begin
    value = b"\x01" + bytes(RECORD_BYTES - 1)
    prefix = b"\x01\x00\x10" + b"0123456789abcdef"

    def decide(key: Key) -> None:
        record_key = prefix + (key.encode() if isinstance(key, str) else key)
        txn = begin(write=True)
        txn.get(record_key)
        txn.put(record_key, value)
        txn.commit()

    return with_close(decide, env.close)


def cases(root: Path, servers: Servers | None) -> list[Case]:
    """Floor, memory://, lmdb (wal, try_acquire, periodic), Redis if running, the SQLite peer."""
    policy = SHARED_IN_USE  # Redis's script wants a burst that refills within 2^50 µs

    def lmdb(durability: str, full: bool = True) -> Decide:
        url = f"lmdb://{fresh_path(root, durability)}?durability={durability}"
        return contenders.make_bucketcore(policy, url, full=full)

    found = [
        Case(RAW_TXN, FLOOR, lambda: make_raw_txn(fresh_path(root, "raw"))),
        Case(bars.MEMORY_STORE, BUCKETCORE, lambda: contenders.make_bucketcore(policy, full=True)),
        Case(bars.LMDB_WAL, BUCKETCORE, lambda: lmdb("wal")),
        Case(bars.LMDB_WAL_TRY, BUCKETCORE, lambda: lmdb("wal", full=False)),
        Case(LMDB_PERIODIC, BUCKETCORE, lambda: lmdb("periodic")),
    ]
    if servers is not None:
        url = prefixed(f"redis://127.0.0.1:{servers.standalone.port}/0")
        found.append(
            Case(
                bars.REDIS_SINGLE,
                BUCKETCORE,
                lambda: contenders.make_bucketcore(policy, url, full=True),
            )
        )
    found.append(
        Case(
            bars.PYRATE_SQLITE,
            PEER,
            lambda: contenders.make_pyrate_sqlite(fresh_path(root, "pyrate") + ".sqlite"),
        )
    )
    return found


def _group(group_id: str, title: str, keys: list[Key], sizes: Sizes, found: list[Case]) -> Group:
    progress(f"  {SUITE}: {title}")
    built = build(found)
    try:
        times = interleave(built, sizes.rounds, lambda decide: time_pass(decide, keys))
        wrong = wrong_answers(built, keys[0], allowed=True)
    finally:
        close_all(built)
    note = "one process; memory:// is per process (not shared), every other store is shared"
    if wrong:
        note += f"; answered the other way: {', '.join(wrong)}"
    return group_of(group_id, title, SUITE, RAW_TXN, built, times, note=note)


def run(servers: Servers | None, sizes: Sizes, data_root: Path | None = None) -> list[Group]:
    """The ``lmdb.hot`` and ``lmdb.many`` groups."""
    base = data_root if data_root is not None else Path.cwd() / ".bench-data"
    root = base / f"lmdb-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    hot: list[Any] = ["hot"] * sizes.store_calls
    distinct: list[Any] = [f"user-{i}" for i in range(sizes.store_calls)]
    try:
        return [
            _group("lmdb.hot", "one hot key, allowed", hot, sizes, cases(root, servers)),
            _group(
                "lmdb.many",
                f"{len(distinct):,} distinct keys, allowed",
                distinct,
                sizes,
                cases(root, servers),
            ),
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)
