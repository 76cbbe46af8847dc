"""A separate process for the LMDB tests: ``python -m tests.lmdb_worker CMD ...``.

Commands (each writes its lines straight to stdout, so the parent sees
exactly what was acknowledged):

- ``grab PATH THREADS``: wait for a line on stdin (the start signal), then
  THREADS threads take ``HOT`` tokens of key ``hot`` until denied; print the
  number granted.
- ``pair PATH ROUNDS``: ROUNDS calls of ``acquire("pair", ROOMY, TIGHT)``;
  print how many were granted.
- ``hammer PATH SEED``: take tokens of random keys of ``CRASH_LIMIT`` until
  killed; print ``ready``, then ``key`` for every granted decision, written
  after the call returned (so every printed grant was acknowledged).
- ``remaining PATH``: print ``key tokens`` for every crash key (peek).
- ``hold-write PATH``: open the environment with py-lmdb directly, begin a
  write transaction, put a record, print ``holding`` and sleep (to be killed).
- ``fork PATH CHILDREN``: one Limiter made before fork; CHILDREN children
  each take tokens of ``forked`` until denied, report their count on a pipe;
  print their exit statuses, counts and the parent's next answer as JSON.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time

from bucketcore import Limit, Limiter

HOT = Limit(100, 86400.0)
ROOMY, TIGHT = Limit(1000, 86400.0), Limit(30, 86400.0)
CRASH_LIMIT = Limit(10**6, 86400.0 * 365)  # refills ~0.03 tokens a second
CRASH_KEYS = 20
FORKED = Limit(30, 86400.0)


def say(line: str) -> None:
    os.write(1, (line + "\n").encode())


def grab(path: str, threads: str) -> None:
    limiter = Limiter(f"lmdb://{path}")
    counts = [0] * int(threads)

    def take(index: int) -> None:
        while limiter.try_acquire("hot", HOT):
            counts[index] += 1

    workers = [threading.Thread(target=take, args=(i,)) for i in range(int(threads))]
    say("ready")
    sys.stdin.readline()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    say(str(sum(counts)))


def pair(path: str, rounds: str) -> None:
    limiter = Limiter(f"lmdb://{path}")
    granted = sum(limiter.acquire("pair", ROOMY, TIGHT).allowed for _ in range(int(rounds)))
    say(str(granted))


def hammer(path: str, seed: str) -> None:
    limiter = Limiter(f"lmdb://{path}")
    rng = random.Random(seed)
    say("ready")
    while True:
        key = f"crash-{rng.randrange(CRASH_KEYS)}"
        if limiter.try_acquire(key, CRASH_LIMIT):
            say(key)


def remaining(path: str) -> None:
    limiter = Limiter(f"lmdb://{path}")
    for index in range(CRASH_KEYS):
        key = f"crash-{index}"
        say(f"{key} {limiter.peek(key, CRASH_LIMIT).remaining}")


def hold_write(path: str) -> None:
    import lmdb

    env = lmdb.open(path, map_size=1 << 25, writemap=True)
    txn = env.begin(write=True)
    txn.put(b"\x7fheld", b"by a process about to die")
    say("holding")
    time.sleep(3600)


def fork(path: str, children: str) -> None:
    limiter = Limiter(f"lmdb://{path}")
    limiter.peek("forked", FORKED)  # used before fork: its handle is open
    pids = []
    read_end, write_end = os.pipe()
    for _ in range(int(children)):
        pid = os.fork()
        if pid == 0:
            count = 0
            while limiter.try_acquire("forked", FORKED):
                count += 1
                time.sleep(0.001)  # let the children interleave
            os.write(write_end, f"{count}\n".encode())
            os._exit(0)
        pids.append(pid)
    os.close(write_end)
    statuses = [os.waitpid(pid, 0)[1] for pid in pids]
    with os.fdopen(read_end) as reports:
        counts = [int(line) for line in reports]
    after = limiter.acquire("forked", FORKED)  # the parent still works
    say(json.dumps({"statuses": statuses, "counts": counts, "parent_allowed": after.allowed}))


COMMANDS = {
    "grab": grab,
    "pair": pair,
    "hammer": hammer,
    "remaining": remaining,
    "hold-write": hold_write,
    "fork": fork,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
