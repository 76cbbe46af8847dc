"""rocksdb:// in its three durability modes, next to memory:// and raw rocksdict.

Stores live under ``.bench-data/`` in the working tree, on the real disk:
``/tmp`` may be a tmpfs, where an fsync costs nothing and ``sync`` would look
free. Floors: a raw rocksdict ``put`` of a record of the backend's size
(WAL, no fsync), and the naive durable loop (``put`` with ``sync=True``,
one fsync per decision) that ``sync``'s group commit has to beat. A last
group shows why ``sync`` fsyncs with ``flush_wal`` outside the store lock: a
second Python thread barely runs during a synced ``put`` (rocksdict holds the
GIL), and runs on during ``flush_wal`` (it lets go).
"""

from __future__ import annotations

import itertools
import math
import os
import random
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import bars, contenders
from benchmarks.contenders import IN_USE, with_close
from benchmarks.harness import (
    BUCKETCORE,
    FLOOR,
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
    time_threads_for,
)

SUITE = "rocksdb"
RECORD_BYTES = 57  # backends/rocksdb/records.py: struct "<BqQQQQqQ"
RAW_PUT = f"raw rocksdict put ({RECORD_BYTES} B record, WAL)"
GIL_IDLE = "main thread asleep"
GIL_SYNCED_PUT = "main thread in put(sync=True)"
GIL_FLUSH_WAL = "main thread in put + flush_wal(True)"


def available() -> str | None:
    """Why the suite cannot run here, or None."""
    try:
        import bucketcore.backends.rocksdb  # noqa: F401
    except Exception as exc:
        return f"rocksdb:// not importable ({type(exc).__name__}: {exc})"
    return None


class DataDir:
    """Fresh store directories under one root, removed at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def fresh(self, name: str) -> str:
        path = self.root / f"{name}-{uuid.uuid4().hex[:8]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        return str(path)


@contextmanager
def data_dir(root: Path | None = None) -> Iterator[DataDir]:
    base = root if root is not None else Path.cwd() / ".bench-data"
    directory = base / f"rocksdb-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    directory.mkdir(parents=True)
    try:
        yield DataDir(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def make_rocksdb(data: DataDir, durability: str, *, full: bool = True) -> Decide:
    path = data.fresh(durability)
    return contenders.make_bucketcore(
        IN_USE, f"rocksdb://{path}?durability={durability}", full=full
    )


def _raw_db(data: DataDir, name: str) -> Any:
    """A fresh raw-mode rocksdict."""
    import rocksdict

    options = rocksdict.Options(raw_mode=True)
    options.create_if_missing(True)
    return rocksdict.Rdict(data.fresh(name), options)


def _writes(*, sync: bool) -> Any:
    """rocksdict write options: each put fsynced (``sync``) or only in the WAL."""
    import rocksdict

    write = rocksdict.WriteOptions()
    write.sync = sync
    return write


def make_raw_put(data: DataDir, *, sync: bool = False) -> Decide:
    """A rocksdict put of the backend's record size: the floor of a durable write."""
    db, write = _raw_db(data, "raw-sync" if sync else "raw"), _writes(sync=sync)
    put = db.put
    value = b"\x01" + bytes(RECORD_BYTES - 1)
    prefix = b"\x01\x00\x10" + b"0123456789abcdef"

    def decide(key: Key) -> None:
        put(prefix + (key.encode() if isinstance(key, str) else key), value, write)

    return with_close(decide, db.close)


def _cases(data: DataDir, modes: tuple[str, ...]) -> list[Case]:
    cases = [
        Case(RAW_PUT, FLOOR, lambda: make_raw_put(data)),
        Case(bars.MEMORY_STORE, BUCKETCORE, lambda: contenders.make_bucketcore(IN_USE, full=True)),
    ]
    names = {
        "wal": bars.ROCKSDB_WAL,
        "periodic": bars.ROCKSDB_PERIODIC,
        "sync": bars.ROCKSDB_SYNC,
    }
    cases += [
        Case(names[mode], BUCKETCORE, lambda mode=mode: make_rocksdb(data, mode))  # type: ignore[misc]
        for mode in modes
    ]
    return cases


def _try_cases(data: DataDir) -> list[Case]:
    """``try_acquire`` on memory://, wal and periodic: the bar holds for both calls."""
    return [
        Case(bars.MEMORY_STORE_TRY, BUCKETCORE, lambda: contenders.make_bucketcore(IN_USE)),
        Case(bars.ROCKSDB_WAL_TRY, BUCKETCORE, lambda: make_rocksdb(data, "wal", full=False)),
        Case(
            "rocksdb periodic try_acquire",
            BUCKETCORE,
            lambda: make_rocksdb(data, "periodic", full=False),
        ),
    ]


def _measure(
    group_id: str,
    title: str,
    cases: list[Case],
    fill: list[Key],
    measured: list[Key],
    sizes: Sizes,
    reference: str = RAW_PUT,
    note: str = "",
) -> Group:
    progress(f"  {SUITE}: {title}")
    built = build(cases)
    try:
        times = interleave(
            built,
            sizes.rounds,
            lambda d: time_pass(d, measured),
            warm_up=lambda d: time_pass(d, fill),
        )
    finally:
        close_all(built)
    return group_of(group_id, title, SUITE, reference, built, times, note=note)


def run(sizes: Sizes, root: Path | None = None) -> tuple[list[Group], list[dict[str, Any]]]:
    """The RocksDB groups and its footprint row."""
    groups = []
    with data_dir(root) as data:
        hot = ["hot"] * sizes.store_calls
        groups.append(
            _measure(
                "rocksdb.hot",
                "one hot key, allowed",
                [*_cases(data, ("wal", "periodic")), *_try_cases(data)],
                hot,
                hot,
                sizes,
            )
        )
        cycle = [f"user-{i}" for i in range(sizes.many_keys)]
        walk = list(itertools.islice(itertools.cycle(cycle), sizes.store_calls))
        groups.append(
            _measure(
                "rocksdb.many",
                f"{sizes.many_keys:,} keys round-robin, allowed",
                [*_cases(data, ("wal", "periodic")), *_try_cases(data)],
                cycle,
                walk,
                sizes,
            )
        )
        groups.append(gil_share(data, sizes))  # before sync_threads: the chart's x label
        groups.append(sync_threads(data, sizes, sizes.fsync_seconds))
        groups += resident(data, sizes)
        footprint = [disk_footprint(data, sizes.footprint_keys)]
    return groups, footprint


def resident(data: DataDir, sizes: Sizes) -> list[Group]:
    """wal's cost per decision as resident buckets grow, on random resident keys."""
    groups = []
    for count in sizes.store_resident:
        fill = [f"user-{i}" for i in range(count)]
        rng = random.Random(count)
        measured = [fill[rng.randrange(count)] for _ in range(sizes.store_calls)]
        group = _measure(
            f"rocksdb.resident.{count}",
            f"rocksdb: {count:,} resident bucket{'s' if count != 1 else ''}, allowed (acquire)",
            _cases(data, ("wal",)),
            fill,
            measured,
            sizes,
        )
        group.suite, group.x = "scaling", float(count)
        groups.append(group)
    return groups


def sync_threads(data: DataDir, sizes: Sizes, seconds: float) -> Group:
    """``sync`` with 1 and 8 threads against the naive fsync-per-put loop.

    Time-boxed slices (``seconds`` each), interleaved round by round, so the
    disk's drifting fsync latency hits every case alike.
    """
    title = f"sync: group commit with threads vs one fsync per put ({seconds:g} s slices)"
    progress(f"  {SUITE}: {title}")
    single = [[f"k{i}" for i in range(100)]]
    eight = [[f"t{t}-{i}" for i in range(100)] for t in range(8)]
    cases = {
        bars.NAIVE_FSYNC: (FLOOR, lambda: make_raw_put(data, sync=True), single),
        f"{bars.ROCKSDB_SYNC}, 1 thread": (BUCKETCORE, lambda: make_rocksdb(data, "sync"), single),
        bars.ROCKSDB_SYNC_8: (BUCKETCORE, lambda: make_rocksdb(data, "sync"), eight),
        f"{bars.ROCKSDB_WAL}, 8 threads": (BUCKETCORE, lambda: make_rocksdb(data, "wal"), eight),
    }
    built = build([Case(name, role, make) for name, (role, make, _slices) in cases.items()])
    layouts = {name: layout for name, (_role, _make, layout) in cases.items()}
    try:
        for _case, decide in built.values():  # warm up: open, first writes, first fsyncs
            time_threads_for(decide, [single[0][:1]], seconds / 4)
        times = dict.fromkeys(built, math.inf)
        for _ in range(sizes.rounds):
            for name, (_case, decide) in built.items():
                times[name] = min(times[name], time_threads_for(decide, layouts[name], seconds))
    finally:
        close_all(built)
    return group_of(
        "rocksdb.sync_threads",
        title,
        SUITE,
        bars.NAIVE_FSYNC,
        built,
        times,
        note="wall time / decisions; the naive loop is one thread calling put(sync=True)",
    )


def disk_footprint(data: DataDir, count: int) -> dict[str, Any]:
    """Bytes per bucket on disk: ``count`` buckets written in wal mode, then compacted."""
    import rocksdict

    progress(f"  {SUITE}: footprint of {count:,} buckets on disk after compaction")
    path = data.fresh("footprint")
    decide = contenders.make_bucketcore(IN_USE, f"rocksdb://{path}?durability=wal")
    for i in range(count):
        decide(f"user-{i}")
    decide.close()  # type: ignore[attr-defined]
    options = rocksdict.Options(raw_mode=True)
    # The backend's column-family options, which RocksDB checks on open.
    options.set_allow_concurrent_memtable_write(False)
    options.set_inplace_update_support(True)
    db = rocksdict.Rdict(path, options)
    db.flush()
    db.compact_range(None, None)
    db.close()
    sst = sum(file.stat().st_size for file in Path(path).glob("*.sst"))
    return {
        "store": "rocksdb",
        "case": "bucketcore rocksdb://",
        "role": BUCKETCORE,
        "keys": count,
        "bytes_per_bucket": sst / count,
        "method": "SST bytes after flush + full compaction",
    }


def gil_share(data: DataDir, sizes: Sizes) -> Group:
    """How fast a second Python thread counts while the main thread fsyncs, two ways.

    Each row is nanoseconds per step of a thread counting in a loop (lower:
    it got more done), measured in interleaved slices of
    ``sizes.fsync_seconds``, best of ``sizes.rounds``; the reference is the
    same thread while the main thread sleeps.
    """
    title = "the GIL during an fsync: ns per step of a second, counting thread (lower: it ran)"
    progress(f"  {SUITE}: {title}")
    db, synced, plain = _raw_db(data, "gil"), _writes(sync=True), _writes(sync=False)
    record = b"\x01" + bytes(RECORD_BYTES - 1)

    def put_then_flush() -> None:
        db.put(b"gil", record, plain)
        db.flush_wal(True)

    phases: dict[str, Any] = {
        GIL_IDLE: lambda: time.sleep(0.01),
        GIL_SYNCED_PUT: lambda: db.put(b"gil", record, synced),
        GIL_FLUSH_WAL: put_then_flush,
    }
    steps = [0]
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            steps[0] += 1

    counter = threading.Thread(target=count)
    counter.start()
    best = dict.fromkeys(phases, math.inf)
    try:
        for _ in range(sizes.rounds):
            for name, work in phases.items():
                before, started = steps[0], time.perf_counter_ns()
                until = time.perf_counter() + sizes.fsync_seconds
                while time.perf_counter() < until:
                    work()
                spent = time.perf_counter_ns() - started
                best[name] = min(best[name], spent / max(1, steps[0] - before))
    finally:
        stop.set()
        counter.join()
        db.close()
    group = Group("rocksdb.gil", title, SUITE, GIL_IDLE, unit="ns/step of the second thread")
    group.note = "why sync fsyncs with flush_wal outside the store lock (backends/rocksdb.py)"
    for name, ns in best.items():
        group.add(name, FLOOR, ns)
    return group
