"""The RocksDB backend across real processes: restarts, kill -9, the owner lock.

Each test runs ``tests/rocksdb_worker.py`` in a subprocess on a real RocksDB
directory under ``tmp_path``. Crash tests SIGKILL the worker after a random
number of acknowledged decisions; real time is only used where it is the
point (the periodic window), with generous bounds.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest

from bucketcore import Limiter, StoreLocked
from bucketcore.backends.rocksdb import RocksDBStore
from bucketcore.decision import seconds_at_least
from tests.rocksdb_worker import ALICE_LIMIT, HAMMER_LIMIT, KEYS, open_and_close

ROOT = Path(__file__).resolve().parent.parent
SECOND = 1_000_000_000


@contextmanager
def worker(*args: object, stdin: int | None = None) -> Iterator[subprocess.Popen[str]]:
    """A running worker; killed (if still alive) and reaped on exit, pipes closed."""
    with subprocess.Popen(
        [sys.executable, "-m", "tests.rocksdb_worker", *map(str, args)],
        cwd=ROOT,
        stdin=stdin,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()


def run_worker(*args: object, prefix: tuple[str, ...] = ()) -> str:
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "tests.rocksdb_worker", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def expect_line(stream: IO[str] | None, prefix: str) -> str:
    assert stream is not None
    line = stream.readline()
    assert line.startswith(prefix), f"expected {prefix!r} from the worker, got {line!r}"
    return line.strip()


@contextmanager
def holder(path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A worker that owns the store until told to close."""
    with worker("hold", path, stdin=subprocess.PIPE) as process:
        pid = int(expect_line(process.stdout, "ready").split()[1])
        yield process, pid


def release(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.write("close\n")
    process.stdin.flush()
    expect_line(process.stdout, "closed")


# -- restart -----------------------------------------------------------------------


def test_an_exhausted_key_stays_exhausted_in_a_new_process(tmp_path: Path) -> None:
    path = tmp_path / "limits"
    wall = 1_800_000_000 * SECOND
    run_worker("exhaust", path, 3 * SECOND, wall)
    # This process is the next run: another monotonic origin, 2.25 s later.
    store = RocksDBStore(path, clock=lambda: 500 * SECOND, wall_clock=lambda: wall + 2_250_000_000)
    with Limiter(store) as limiter:
        decision = limiter.peek("alice", ALICE_LIMIT, cost=3)
        assert not decision.allowed
        assert decision.retry_after == seconds_at_least(750_000_000)
        assert [limiter.try_acquire("alice", ALICE_LIMIT) for _ in range(3)] == [True, True, False]


# -- the owner lock ------------------------------------------------------------------


def test_a_second_opener_gets_store_locked_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "limits"
    with holder(path) as (process, pid):
        with pytest.raises(StoreLocked, match=f"pid {pid} on host "):
            RocksDBStore(path).open()
        release(process)
    open_and_close(path)  # free once the holder closed


def test_a_killed_owner_leaves_no_lock_behind(tmp_path: Path) -> None:
    path = tmp_path / "limits"
    with holder(path) as (process, _):
        process.send_signal(signal.SIGKILL)
        process.wait()
    with Limiter(RocksDBStore(path)) as limiter:
        assert not limiter.try_acquire("alice", ALICE_LIMIT)  # and its state survived


def test_with_lock_timeout_the_next_owner_takes_over_when_the_first_closes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "limits"
    with holder(path) as (first, _), worker("take-over", path) as second:
        expect_line(second.stdout, "locked")  # it found the store taken, and now waits
        release(first)
        assert expect_line(second.stdout, "opened") == "opened 0"  # with the first's state
        assert second.wait(timeout=60) == 0


# -- crashes ---------------------------------------------------------------------------


def hammer_and_kill(
    path: Path, durability: str, rng: random.Random, *, threads: int, lasting_ns: int
) -> tuple[list[tuple[int, int, int]], int]:
    """Run a hammer worker, SIGKILL it at a random moment; (acknowledged, kill wall ns)."""
    with worker("hammer", path, durability, 0.05, threads, rng.random()) as process:
        assert process.stdout is not None
        expect_line(process.stdout, "ready")
        wanted = rng.randrange(50, 2000)
        acknowledged: list[tuple[int, int, int]] = []
        for line in process.stdout:
            key, remaining, wall = map(int, line.split())
            acknowledged.append((key, remaining, wall))
            if len(acknowledged) >= wanted and time.time_ns() - acknowledged[0][2] >= lasting_ns:
                break
        killed_at = time.time_ns()
        process.send_signal(signal.SIGKILL)
        rest = process.stdout.read()  # written before the kill: acknowledged too
    for line in rest.splitlines(keepends=True):
        if line.endswith("\n"):
            key, remaining, wall = map(int, line.split())
            acknowledged.append((key, remaining, wall))
    return acknowledged, killed_at


def whole_tokens(limiter: Limiter, key: int) -> int:
    decision = limiter.peek(f"key-{key}", HAMMER_LIMIT)
    return decision.remaining + 1 if decision.allowed else decision.remaining


def check_no_acknowledged_decision_lost(
    path: Path, acknowledged: list[tuple[int, int, int]], lost_after_ns: int | None
) -> int:
    """Reopen; every key holds at most its last kept decision's tokens plus the refill.

    ``lost_after_ns``: decisions acknowledged after this wall instant may be
    lost (periodic); None: none may. Returns how many keys were checked.
    """
    first_seen: dict[int, int] = {}
    kept: dict[int, int] = {}
    for key, remaining, wall in acknowledged:  # each key's decisions are in order
        first_seen.setdefault(key, wall)
        if lost_after_ns is None or wall <= lost_after_ns:
            kept[key] = remaining
    rate = HAMMER_LIMIT.tokens / HAMMER_LIMIT.period
    with Limiter(RocksDBStore(path)) as limiter:
        now = time.time_ns()
        for key in range(KEYS):
            if key not in kept:
                continue
            # The bucket was full when its first decision began, and tokens
            # only come back at `rate`: whatever the lost decisions did, it
            # holds at most what the last kept one left plus the refill.
            refill = rate * (now - first_seen[key]) / SECOND
            assert whole_tokens(limiter, key) <= math.floor(kept[key] + refill), key
    return len(kept)


@pytest.mark.parametrize(("durability", "threads"), [("wal", 1), ("sync", 4)])
def test_kill_9_loses_no_acknowledged_decision(
    tmp_path: Path, durability: str, threads: int
) -> None:
    rng = random.Random(f"kill-9-{durability}")
    for round_number in range(10):
        path = tmp_path / f"round-{round_number}"
        acknowledged, _ = hammer_and_kill(path, durability, rng, threads=threads, lasting_ns=0)
        assert acknowledged
        assert check_no_acknowledged_decision_lost(path, acknowledged, None) > 0
        shutil.rmtree(path)


PERIODIC_WINDOW_NS = 50_000_000 + 450_000_000  # flush_interval 0.05 s, and a flush's own time


def test_kill_9_in_periodic_mode_loses_at_most_the_window(tmp_path: Path) -> None:
    rng = random.Random("kill-9-periodic")
    for round_number in range(10):
        path = tmp_path / f"round-{round_number}"
        lasting = PERIODIC_WINDOW_NS + rng.randrange(100_000_000, 400_000_000)
        acknowledged, killed_at = hammer_and_kill(
            path, "periodic", rng, threads=1, lasting_ns=lasting
        )
        lost_after = killed_at - PERIODIC_WINDOW_NS
        assert any(wall <= lost_after for _, _, wall in acknowledged)
        assert check_no_acknowledged_decision_lost(path, acknowledged, lost_after) > 0
        shutil.rmtree(path)


# -- unwritable directories ------------------------------------------------------------


def without_root_powers() -> tuple[str, ...]:
    """A command prefix under which root, too, obeys file permissions."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a directory read-only")
    return (setpriv, "--bounding-set=-all")


def test_a_read_only_parent_directory_is_a_clear_store_error(tmp_path: Path) -> None:
    parent = tmp_path / "read-only"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        output = run_worker("open", parent / "limits", prefix=without_root_powers())
    finally:
        parent.chmod(0o755)
    assert output.startswith("StoreError cannot take ownership of RocksDB store")
    assert "Permission denied" in output


def test_a_read_only_store_directory_is_a_clear_store_error(tmp_path: Path) -> None:
    path = tmp_path / "limits"
    open_and_close(path)
    path.chmod(0o555)
    try:
        output = run_worker("open", path, prefix=without_root_powers())
    finally:
        path.chmod(0o755)
    assert output.startswith(f"StoreError RocksDB store {path}: open failed:")
    assert "Permission denied" in output


def test_a_full_disk_is_a_clear_store_error(tmp_path: Path) -> None:
    output = run_worker("fill", tmp_path / "limits")
    assert output.startswith(f"StoreError RocksDB store {tmp_path / 'limits'}: write failed:")
    assert "File too large" in output  # what the capped file size looks like


# -- long variants ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("durability", "threads"), [("wal", 1), ("wal", 4), ("sync", 8)])
def test_kill_9_stress(tmp_path: Path, durability: str, threads: int) -> None:
    rng = random.Random(f"stress-{durability}-{threads}")
    for round_number in range(50):
        path = tmp_path / f"round-{round_number}"
        acknowledged, _ = hammer_and_kill(
            path, durability, rng, threads=threads, lasting_ns=rng.randrange(0, SECOND)
        )
        check_no_acknowledged_decision_lost(path, acknowledged, None)
        shutil.rmtree(path)
