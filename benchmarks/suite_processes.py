"""Several processes of one host deciding at once: aggregate decisions per second.

1, 2, 4 and 8 processes (``Sizes.processes``), forked from the runner, each
on its own 100 keys, each deciding for ``Sizes.process_seconds`` after a
common barrier; a group's time is the wall time from the first start to
the last end divided by every process's decisions. The cases:

- memory:// (per process): each process has its own buckets, so this is
  the ceiling, not a shared limit;
- lmdb:// wal: one LMDB file that every process opens;
- redis://: our own server (``support/servers.py``), left out without one;
- pyrate-limiter's ``SQLiteBucket`` with its file lock, one SQLite file.

The machine's core count caps what more processes can add; the report
states it.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks import bars, contenders
from benchmarks.contenders import SHARED_IN_USE
from benchmarks.harness import BUCKETCORE, PEER, Decide, Group, Sizes, progress
from benchmarks.suite_lmdb import fresh_path
from benchmarks.suite_redis import prefixed
from support.servers import Servers

SUITE = "processes"
KEYS_PER_PROCESS = 100
CHECK_EVERY = 8  # decisions between clock reads (memory:// decides in ~200 ns)
ROLES = {
    bars.MEMORY_PER_PROCESS: BUCKETCORE,
    bars.LMDB_WAL: BUCKETCORE,
    bars.REDIS_SINGLE: BUCKETCORE,
    bars.PYRATE_SQLITE: PEER,
}


def _decider(case: str, target: str) -> Decide:
    if case == bars.PYRATE_SQLITE:
        return contenders.make_pyrate_sqlite(target)
    return contenders.make_bucketcore(SHARED_IN_USE, target, full=True)


def _child(case: str, target: str, seconds: float, index: int, barrier: Any, results: Any) -> None:
    decide = _decider(case, target)
    keys = [f"p{index}-{i}" for i in range(KEYS_PER_PROCESS)]
    blocks = [keys[i : i + CHECK_EVERY] for i in range(0, len(keys), CHECK_EVERY)]
    decide(keys[0])
    barrier.wait()
    started = now = time.monotonic_ns()
    deadline = started + int(seconds * 1e9)
    done = 0
    while now < deadline:
        block = blocks[done // CHECK_EVERY % len(blocks)]
        for key in block:
            decide(key)
        done += len(block)
        now = time.monotonic_ns()
    results.put((started, now, done))
    decide.close()  # type: ignore[attr-defined]


def run_processes(case: str, target: str, count: int, seconds: float) -> float:
    """Wall nanoseconds per decision of ``count`` processes deciding at once."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(count)
    results = context.Queue()
    children = [
        context.Process(target=_child, args=(case, target, seconds, i, barrier, results))
        for i in range(count)
    ]
    for child in children:
        child.start()
    spans: list[tuple[int, int, int]] = []
    deadline = time.monotonic() + 120 + 10 * seconds
    while len(spans) < count:
        try:
            spans.append(results.get(timeout=1.0))
        except queue.Empty:
            failed = [child.exitcode for child in children if child.exitcode not in (None, 0)]
            if failed or time.monotonic() > deadline:
                for child in children:
                    child.kill()
                raise RuntimeError(f"a {case} process failed (exit codes {failed})") from None
    for child in children:
        child.join(timeout=60)
    wall = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
    return wall / max(1, sum(done for _, _, done in spans))


def _targets(root: Path, count: int, servers: Servers | None) -> dict[str, str]:
    """Each case's URL or file for one process count (fresh stores each)."""
    targets = {
        bars.MEMORY_PER_PROCESS: "memory://",
        bars.LMDB_WAL: f"lmdb://{fresh_path(root, f'lmdb-{count}')}",
    }
    if servers is not None:
        targets[bars.REDIS_SINGLE] = prefixed(f"redis://127.0.0.1:{servers.standalone.port}/0")
    targets[bars.PYRATE_SQLITE] = fresh_path(root, f"pyrate-{count}") + ".sqlite"
    return targets


def run(servers: Servers | None, sizes: Sizes, data_root: Path | None = None) -> list[Group]:
    """One ``processes.<count>`` group per process count, best of interleaved rounds."""
    base = data_root if data_root is not None else Path.cwd() / ".bench-data"
    root = base / f"processes-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    rounds = max(1, min(sizes.rounds, 2))
    groups = []
    try:
        for count in sizes.processes:
            title = f"{count} process{'es' if count > 1 else ''}, one key set each, allowed"
            progress(f"  {SUITE}: {title}")
            targets = _targets(root, count, servers)
            best = {case: float("inf") for case in targets}
            for _ in range(rounds):
                for case, target in targets.items():
                    ns = run_processes(case, target, count, sizes.process_seconds)
                    best[case] = min(best[case], ns)
            group = Group(
                f"{SUITE}.{count}",
                title,
                SUITE,
                bars.MEMORY_PER_PROCESS,
                x=float(count),
                note=(
                    f"wall time / decisions of all processes, {sizes.process_seconds:g} s each; "
                    f"{os.cpu_count()} CPUs"
                ),
            )
            for case, ns in best.items():
                group.add(case, ROLES[case], ns)
            groups.append(group)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return groups
