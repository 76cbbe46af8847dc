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
- ``acknowledge PATH DURABILITY N``: take one token (``HAMMER_LIMIT``) of ``key-0`` .. ``key-N-1``,
  print ``done`` and wait to be killed.
- ``race PATH``: open; print ``won PID`` and close when a line arrives on
  stdin, or print ``locked <message>``.
- ``serve-app PATH``: the flask reloader's shape: build the app (its store
  unopened), then run a child process that builds it again and serves three
  requests; print the child's status codes.
- ``build-app PATH``: build the app and serve three requests (the child above).
- ``fork-after-use PATH``: use a store, fork; the child prints what a call says.
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


def acknowledge(path: str, durability: str, count: str) -> None:
    limiter = Limiter(f"rocksdb://{path}?durability={durability}")
    for index in range(int(count)):
        assert limiter.try_acquire(f"key-{index}", HAMMER_LIMIT)
    say("done")
    time.sleep(600)


def race(path: str) -> None:
    from bucketcore import StoreLocked

    store = RocksDBStore(path)
    try:
        store.open()
    except StoreLocked as exc:
        say(f"locked {exc}")
        return
    say(f"won {os.getpid()}")
    sys.stdin.readline()
    store.close()


def build_app(path: str) -> object:
    from flask import Flask

    from bucketcore.flask import BucketCore

    app = Flask("reloaded")
    BucketCore(app, limiter=Limiter(f"rocksdb://{path}"), default="100/hour")
    app.add_url_rule("/", view_func=lambda: "ok")
    return app


def serve_app(path: str) -> None:
    import subprocess

    build_app(path)  # the reloader's parent imports the app, and keeps running
    child = subprocess.run(
        [sys.executable, "-m", "tests.rocksdb_worker", "build-app", path],
        capture_output=True,
        text=True,
        timeout=120,
    )
    say(child.stdout.strip() or child.stderr.strip().splitlines()[-1])


def build_app_and_serve(path: str) -> None:
    client = build_app(path).test_client()  # type: ignore[attr-defined]
    say(" ".join(str(client.get("/").status_code) for _ in range(3)))


def fork_after_use(path: str) -> None:
    limiter = Limiter(f"rocksdb://{path}")
    assert limiter.try_acquire("alice", ALICE_LIMIT)
    pid = os.fork()
    if pid == 0:
        try:
            limiter.try_acquire("alice", ALICE_LIMIT)
        except Exception as exc:
            say(f"child {type(exc).__name__} {exc}")
        else:
            say("child allowed")
        limiter.close()
        os._exit(0)
    os.waitpid(pid, 0)
    say(f"parent {limiter.peek('alice', ALICE_LIMIT).remaining}")
    limiter.close()


COMMANDS = {
    "acknowledge": acknowledge,
    "race": race,
    "serve-app": serve_app,
    "build-app": build_app_and_serve,
    "fork-after-use": fork_after_use,
    "hammer": hammer,
    "hold": hold,
    "take-over": take_over,
    "exhaust": exhaust,
    "open": open_once,
    "fill": fill,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
