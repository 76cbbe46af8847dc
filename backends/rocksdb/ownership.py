"""One owner process per RocksDB directory: ``<path>.owner.lock`` via ``filelock``.

The owner names itself in the lock file (pid and host) once its database is
open, so a second opener's ``StoreLocked`` says who holds it. The name is
one fixed-width ``pwrite`` over the previous owner's, never a truncate and
a write (a reader could see the empty file between the two), and a reader
that finds no name, or the name of a process no longer running (the new
owner has the lock but has not yet opened its database), reads again for
up to ``NAME_WAIT`` seconds. The name is written only after RocksDB opened
(its own ``LOCK`` is the proof), so an opener that takes a lock file
recreated under a running owner never names itself.

Before anything waits, the lock file is opened: a path that cannot be
used (a read-only or missing directory, ``/proc``) is a ``StoreError``
naming the cause, never a ``StoreLocked`` and never a wait.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "db")
>>> lock = take_ownership(path, lock_timeout=0.0)
>>> announce(path)
>>> holder(path + ".owner.lock").startswith("pid ")
True
>>> lock.release()
"""

from __future__ import annotations

import math
import os
import socket
import time

import filelock

from bucketcore.errors import StoreError, StoreLocked

__all__ = ["NAME_WAIT", "announce", "holder", "rocksdb_lock_holder", "take_ownership"]

NAME_WAIT = 3.0  # seconds a loser waits for the winner's name (it opens RocksDB first)
_NAME_WIDTH = 320  # "pid=<pid> host=<hostname>", a hostname being at most 255 bytes


def take_ownership(path: str, lock_timeout: float) -> filelock.BaseFileLock:
    """Hold ``<path>.owner.lock``, waiting up to ``lock_timeout`` s (inf: forever)."""
    lock_path = path + ".owner.lock"
    try:  # the real cause of an unusable path, before any waiting
        os.close(os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644))
    except OSError as exc:
        raise StoreError(
            f"cannot take ownership of RocksDB store {path}: cannot open its lock file "
            f"{lock_path}: {exc.strerror}"
        ) from exc
    lock = filelock.FileLock(
        lock_path,
        timeout=-1 if math.isinf(lock_timeout) else lock_timeout,
        thread_local=False,
    )
    try:
        lock.acquire()
    except filelock.Timeout:
        waited = (
            f"waited {lock_timeout:g} s"
            if lock_timeout
            else "pass lock_timeout=<seconds> to wait for it to close"
        )
        raise StoreLocked(
            f"RocksDB store {path} is owned by {holder(lock_path)} "
            f"(lock file {lock_path}); {waited}"
        ) from None
    except OSError as exc:
        raise StoreError(
            f"cannot take ownership of RocksDB store {path} ({lock_path}): {exc}"
        ) from exc
    return lock


def announce(path: str) -> None:
    """Name this process in the lock file (the lock is held, the database open)."""
    me = f"pid={os.getpid()} host={socket.gethostname()}".encode()[: _NAME_WIDTH - 1]
    fd = os.open(path + ".owner.lock", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.pwrite(fd, me.ljust(_NAME_WIDTH - 1) + b"\n", 0)
    finally:
        os.close(fd)


def holder(lock_path: str, wait: float = NAME_WAIT) -> str:
    """Who the lock file says holds it, read again while it names no running process."""
    deadline = time.monotonic() + wait
    while True:
        named = _named(lock_path)
        if named is not None and _running(*named):
            break
        if time.monotonic() >= deadline:
            if named is None:
                return "another process (it has not written its pid yet)"
            break
        time.sleep(0.01)
    pid, host = named
    return f"pid {pid} on host {host}"


def _named(lock_path: str) -> tuple[int, str] | None:
    try:
        with open(lock_path, encoding="utf-8", errors="replace") as file:
            fields = dict(part.split("=", 1) for part in file.read().split() if "=" in part)
        return int(fields["pid"]), fields["host"]
    except (OSError, KeyError, ValueError):
        return None


def _running(pid: int, host: str) -> bool:
    if host != socket.gethostname():
        return True  # cannot tell from here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def rocksdb_lock_holder(path: str) -> str:
    """Who holds RocksDB's own ``<path>/LOCK``, from ``/proc/locks`` where there is one.

    >>> rocksdb_lock_holder("/nonexistent")
    'another process'
    """
    try:
        inode = os.stat(os.path.join(path, "LOCK")).st_ino
        with open("/proc/locks", encoding="ascii", errors="replace") as file:
            for line in file:
                fields = line.split()  # "1: POSIX ADVISORY WRITE <pid> <maj:min:inode> ..."
                if len(fields) > 5 and fields[1] == "POSIX" and fields[5].endswith(f":{inode}"):
                    if int(fields[4]) == os.getpid():
                        return "this process (another store object on the same path)"
                    return f"pid {fields[4]} on host {socket.gethostname()}"
    except (OSError, ValueError):
        pass
    return "another process"
