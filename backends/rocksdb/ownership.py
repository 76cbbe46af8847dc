"""One owner process per RocksDB directory: ``<path>.owner.lock`` via ``filelock``.

The lock file names the holder's pid and host, so a second opener's
``StoreLocked`` says who holds it.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "db")
>>> lock = take_ownership(path, lock_timeout=0.0)
>>> holder(path + ".owner.lock").startswith("pid ")
True
>>> lock.release()
"""

from __future__ import annotations

import math
import os
import socket

import filelock

from bucketcore.errors import StoreError, StoreLocked

__all__ = ["holder", "take_ownership"]


def take_ownership(path: str, lock_timeout: float) -> filelock.BaseFileLock:
    """Hold ``<path>.owner.lock``, waiting up to ``lock_timeout`` s (inf: forever)."""
    lock_path = path + ".owner.lock"
    me = f"pid={os.getpid()} host={socket.gethostname()}\n".encode()

    def write_holder(fd: int) -> None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, me, 0)

    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        lock = filelock.FileLock(
            lock_path,
            timeout=-1 if math.isinf(lock_timeout) else lock_timeout,
            thread_local=False,
            on_acquired=write_holder,
        )
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


def holder(lock_path: str) -> str:
    """Who the lock file says holds it ("another process" if it does not say)."""
    try:
        with open(lock_path, encoding="utf-8", errors="replace") as file:
            fields = dict(part.split("=", 1) for part in file.read().split() if "=" in part)
    except OSError:
        fields = {}
    if "pid" not in fields:
        return "another process"
    return f"pid {fields['pid']} on host {fields.get('host', '?')}"
