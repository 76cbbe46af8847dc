"""A separate process for the RocksDB tests: ``python -m tests.rocksdb_worker CMD ...``.

Commands (each prints one line per event on stdout, written straight to the
pipe so the parent sees exactly what was acknowledged):

- ``hammer PATH DURABILITY FLUSH_INTERVAL THREADS SEED``: take tokens from
  random keys until killed; print ``ready`` and then, for every granted
  decision, ``key remaining wall_ns_before_the_call``.
- ``hold PATH``: open the store, exhaust ``alice``, print ``ready PID``, close
  when a line arrives on stdin, print ``closed``.
- ``take-over PATH``: try to open (expecting ``StoreLocked``: print
  ``locked``), then open with a long ``lock_timeout``, print ``opened N``
  with N = alice's whole tokens.
- ``exhaust PATH MONOTONIC_NS WALL_NS``: with frozen fake clocks, take every
  token of ``alice``, close.
- ``open PATH``: open and close; print ``ok`` or ``<ExceptionType> message``.
- ``fill PATH``: open, cap the file size (RLIMIT_FSIZE) just past what is
  there, write new buckets until a write fails; print the exception.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import sys
import threading
import time

from bucketcore import Limit, Limiter
from bucketcore.backends.rocksdb import RocksDBStore

KEYS = 1000
HAMMER_LIMIT = Limit(1000, 86400.0)  # never runs dry, and refills < 0.05 tokens a test
ALICE_LIMIT = Limit(10, 10.0)


def open_and_close(path: str) -> None:
    store = RocksDBStore(path)
    store.open()  # a store opens on first use; this opens it now
    store.close()


def say(line: str) -> None:
    os.write(1, (line + "\n").encode())


def hammer(path: str, durability: str, flush_interval: str, threads: str, seed: str) -> None:
    limiter = Limiter(f"rocksdb://{path}?durability={durability}&flush_interval={flush_interval}")
    count = int(threads)
    workers = [
        threading.Thread(target=hammer_keys, args=(limiter, part, count, seed))
        for part in range(count)
    ]
    say("ready")
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def hammer_keys(limiter: Limiter, part: int, count: int, seed: str) -> None:
    rng = random.Random(f"{seed}-{part}")
    mine = [key for key in range(KEYS) if key % count == part]  # each key has one thread
    while True:
        key = rng.choice(mine)
        wall = time.time_ns()
        decision = limiter.acquire(f"key-{key}", HAMMER_LIMIT)
        if decision.allowed:
            say(f"{key} {decision.remaining} {wall}")


def hold(path: str) -> None:
    limiter = Limiter(RocksDBStore(path))
    while limiter.try_acquire("alice", ALICE_LIMIT):
        pass
    say(f"ready {os.getpid()}")
    sys.stdin.readline()
    limiter.close()
    say("closed")


def take_over(path: str) -> None:
    from bucketcore import StoreLocked

    try:
        open_and_close(path)
    except StoreLocked:
        say("locked")
    else:
        say("not locked")
        return
    with Limiter(RocksDBStore(path, lock_timeout=120)) as limiter:
        decision = limiter.peek("alice", ALICE_LIMIT)
        say(f"opened {decision.remaining + decision.allowed}")


def exhaust(path: str, monotonic_ns: str, wall_ns: str) -> None:
    store = RocksDBStore(path, clock=lambda: int(monotonic_ns), wall_clock=lambda: int(wall_ns))
    with Limiter(store) as limiter:
        while limiter.try_acquire("alice", ALICE_LIMIT):
            pass


def open_once(path: str) -> None:
    try:
        open_and_close(path)
    except Exception as exc:
        say(f"{type(exc).__name__} {exc}")
    else:
        say("ok")


def fill(path: str) -> None:
    store = RocksDBStore(path)
    store.open()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of dying
    biggest = max(
        os.path.getsize(os.path.join(path, name))
        for name in os.listdir(path)
        if name.endswith(".log")
    )
    resource.setrlimit(resource.RLIMIT_FSIZE, (biggest + 64 * 1024, resource.RLIM_INFINITY))
    limiter = Limiter(store)
    try:
        for key in range(10_000_000):
            limiter.try_acquire(f"key-{key:08}" + "x" * 200, ALICE_LIMIT)
    except Exception as exc:
        say(f"{type(exc).__name__} {exc}")
    else:
        say("no error")


COMMANDS = {
    "hammer": hammer,
    "hold": hold,
    "take-over": take_over,
    "exhaust": exhaust,
    "open": open_once,
    "fill": fill,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
