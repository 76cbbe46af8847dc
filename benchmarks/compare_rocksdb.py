"""RocksDB next to memory:// and a naive fsync-per-put loop, in one run.

    python -m benchmarks.compare_rocksdb            # about 30 s
    python -m benchmarks.compare_rocksdb --quick    # a few seconds, noisier

Prints ns per decision (and decisions per second for the fsync cases), the
ratios, and PASS/FAIL against the bars of docs/design.md §6:

- ``wal`` at most 10x memory per decision (``try_acquire`` and ``acquire``);
- ``sync`` with 8 threads at least 4x the throughput of a naive loop that
  fsyncs every put (one synced ``rocksdict`` put per decision, no limiter).

It also shows why ``sync`` fsyncs with ``flush_wal`` outside the store lock:
how much a second Python thread gets done during a synced put (rocksdict
holds the GIL) compared with during ``flush_wal`` (it releases it).

Latency cases repeat in interleaved rounds and keep each case's best round,
so a noisy neighbour skews all cases alike; throughput cases run for a fixed
time. The data lives in a temporary directory (``--dir`` to choose the disk).
"""

from __future__ import annotations

import argparse
import shutil
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import rocksdict

from bucketcore import Limit, Limiter
from bucketcore.backends.rocksdb.database import rocksdb_options

# Never denies, and never refills to full during a run (so no bucket is swept
# and re-read): every call is a whole decision plus a write.
ALWAYS = Limit(1, 3600.0, burst=10**12)
RECORD = struct.pack("<BqQQ", 1, 1_800_000_000_000_000_000, 0, 1)  # a record's size


def best_ns_per_call(
    cases: dict[str, Callable[[], object]], calls: int, rounds: int
) -> dict[str, float]:
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for name, call in cases.items():
            start = time.perf_counter_ns()
            for _ in range(calls):
                call()
            best[name] = min(best[name], (time.perf_counter_ns() - start) / calls)
    return best


def interleaved_rates(
    cases: dict[str, tuple[Callable[[int], object], int]], seconds: float, rounds: int
) -> dict[str, float]:
    """Calls per second of each (call, threads) case, measured in alternating slices.

    The disk's fsync latency drifts with whatever else runs on the machine;
    alternating short slices exposes every case to the same drift.
    """
    calls = dict.fromkeys(cases, 0.0)
    spent = dict.fromkeys(cases, 0.0)
    for _ in range(rounds):
        for name, (call, threads) in cases.items():
            rate, elapsed = decisions_per_second(call, threads, seconds / rounds)
            calls[name] += rate * elapsed
            spent[name] += elapsed
    return {name: calls[name] / spent[name] for name in cases}


def decisions_per_second(
    call: Callable[[int], object], threads: int, seconds: float
) -> tuple[float, float]:
    """(calls per second, seconds measured) of ``threads`` threads calling ``call(thread)``."""
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def run(index: int) -> None:
        start.wait()
        done = 0
        while not stop.is_set():
            call(index)
            done += 1
        counts[index] = done

    workers = [threading.Thread(target=run, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    return sum(counts) / elapsed, elapsed


def share_of_gil(db: rocksdict.Rdict, seconds: float) -> tuple[float, float]:
    """How much a counting thread runs during synced puts, then during flush_wal.

    Each is relative to the thread running while the main thread sleeps.
    """
    synced = rocksdict.WriteOptions()
    synced.sync = True
    plain = rocksdict.WriteOptions()
    counter = [0]
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            counter[0] += 1

    def counted(work: Callable[[], object] | None) -> int:
        before = counter[0]
        until = time.perf_counter() + seconds
        while time.perf_counter() < until:
            if work is None:
                time.sleep(0.01)
            else:
                work()
        return counter[0] - before

    thread = threading.Thread(target=count)
    thread.start()
    try:
        idle = counted(None)
        during_put = counted(lambda: db.put(b"gil", RECORD, synced))

        def put_then_flush() -> None:
            db.put(b"gil", RECORD, plain)
            db.flush_wal(True)

        during_flush = counted(put_then_flush)
    finally:
        stop.set()
        thread.join()
    return during_put / idle, during_flush / idle


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument("--dir", help="where the RocksDB directories go (default: a temp dir)")
    args = parser.parse_args()
    calls, rounds, seconds = (5_000, 3, 0.5) if args.quick else (20_000, 7, 2.0)
    root = Path(tempfile.mkdtemp(prefix="bucketcore-bench-", dir=args.dir))
    try:
        return run(root, calls, rounds, seconds)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(root: Path, calls: int, rounds: int, seconds: float) -> int:
    memory = Limiter("memory://")
    wal = Limiter(f"rocksdb://{root}/wal?durability=wal")
    periodic = Limiter(f"rocksdb://{root}/periodic?durability=periodic&flush_interval=1")
    sync = Limiter(f"rocksdb://{root}/sync?durability=sync")
    many = [f"user-{index}" for index in range(10_000)]
    turn = [0]

    def many_keys(limiter: Limiter) -> Callable[[], object]:
        def call() -> object:
            turn[0] = (turn[0] + 1) % len(many)
            return limiter.try_acquire(many[turn[0]], ALWAYS)

        return call

    latency = best_ns_per_call(
        {
            "memory try_acquire": lambda: memory.try_acquire("hot", ALWAYS),
            "memory acquire": lambda: memory.acquire("hot", ALWAYS),
            "memory try_acquire 10k keys": many_keys(memory),
            "wal try_acquire": lambda: wal.try_acquire("hot", ALWAYS),
            "wal acquire": lambda: wal.acquire("hot", ALWAYS),
            "wal try_acquire 10k keys": many_keys(wal),
            "periodic try_acquire": lambda: periodic.try_acquire("hot", ALWAYS),
            "periodic acquire": lambda: periodic.acquire("hot", ALWAYS),
        },
        calls,
        rounds,
    )

    naive_db = rocksdict.Rdict(str(root / "naive"), rocksdb_options())
    synced = rocksdict.WriteOptions()
    synced.sync = True
    throughput = interleaved_rates(
        {
            "naive fsync-per-put loop": (
                lambda _: naive_db.put(b"\x01hot", RECORD, synced),
                1,
            ),
            "sync, 1 thread": (lambda _: sync.try_acquire("hot", ALWAYS), 1),
            "sync, 8 threads": (lambda thread: sync.try_acquire(f"t{thread}", ALWAYS), 8),
        },
        seconds * 3,
        rounds * 2,
    )
    gil_put, gil_flush = share_of_gil(naive_db, min(seconds, 1.0))
    naive_db.close()
    for limiter in (memory, wal, periodic, sync):
        limiter.close()

    print(f"{'case':32} {'ns/decision':>12} {'decisions/s':>12}")
    for name, ns in latency.items():
        print(f"{name:32} {ns:12.0f} {1e9 / ns:12.0f}")
    for name, rate in throughput.items():
        print(f"{name:32} {1e9 / rate:12.0f} {rate:12.0f}")
    print()
    checks = [
        (
            "wal try_acquire / memory try_acquire",
            latency["wal try_acquire"] / latency["memory try_acquire"],
            "<= 10",
            lambda ratio: ratio <= 10,
        ),
        (
            "wal acquire / memory acquire",
            latency["wal acquire"] / latency["memory acquire"],
            "<= 10",
            lambda ratio: ratio <= 10,
        ),
        (
            "sync 8 threads / naive fsync loop",
            throughput["sync, 8 threads"] / throughput["naive fsync-per-put loop"],
            ">= 4",
            lambda ratio: ratio >= 4,
        ),
    ]
    failed = 0
    for name, ratio, bar, ok in checks:
        passed = ok(ratio)
        failed += not passed
        print(f"{name:40} {ratio:7.2f}x  (bar {bar})  {verdict(passed)}")
    print(
        f"{'sync 1 thread / naive fsync loop':40} "
        f"{throughput['sync, 1 thread'] / throughput['naive fsync-per-put loop']:7.2f}x  (no bar)"
    )
    print(
        f"{'periodic try_acquire / memory':40} "
        f"{latency['periodic try_acquire'] / latency['memory try_acquire']:7.2f}x  (no bar)"
    )
    print()
    print(
        f"a second thread's progress during synced puts: {gil_put:.0%} of idle; "
        f"during flush_wal: {gil_flush:.0%} (why sync fsyncs with flush_wal, off the lock)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
