"""RocksDB under faults: damaged logs after kill -9, lock races, lazy opening, fork.

Every test runs real processes on a real RocksDB directory (the worker is
tests/rocksdb_worker.py). The outcomes are the ones docs/design.md §8 states:
a log damaged anywhere but a torn tail is a ``CorruptState`` at open (or,
with ``on_corrupt=empty``, an open that logs once what it dropped); a torn
tail opens in ``wal`` (the power-loss shape it allows) and is a
``CorruptState`` in ``sync`` (it lost fsynced batches).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bucketcore import ConfigurationError, CorruptState, Limiter, StoreError, StoreLocked
from bucketcore.backends.rocksdb import RocksDBStore
from tests.rocksdb_worker import ALICE_LIMIT, HAMMER_LIMIT
from tests.test_rocksdb_process import ROOT, expect_line, holder, release, run_worker, worker

ACKNOWLEDGED = 400
FULL = HAMMER_LIMIT.tokens  # refills < 0.05 tokens a test: the disk sweep deletes none
BLOCK = 32 * 1024  # RocksDB's log block; a record header is crc (4), length (2), type (1)


def acknowledge_and_kill(path: Path, durability: str) -> None:
    """A worker takes a token of ``ACKNOWLEDGED`` keys (each acknowledged), then is killed."""
    with worker("acknowledge", path, durability, ACKNOWLEDGED) as process:
        expect_line(process.stdout, "done")
        process.send_signal(signal.SIGKILL)
        process.wait()


def newest_log(path: Path) -> Path:
    return max(path.glob("*.log"))


def record_payloads(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every record's payload in a RocksDB log."""
    spans = []
    for block in range(0, len(data), BLOCK):
        position, end = block, min(block + BLOCK, len(data))
        while position + 7 <= end:
            length = int.from_bytes(data[position + 4 : position + 6], "little")
            if length == 0 and data[position + 6] == 0:
                break  # the block's zero padding
            spans.append((position + 7, min(position + 7 + length, end)))
            position += 7 + length
    return spans


def damage(log: Path, how: str) -> None:
    """Damage ``log`` inside the payload of its middle record (never at a header)."""
    data = bytearray(log.read_bytes())
    spans = record_payloads(bytes(data))
    start, end = spans[len(spans) // 2]
    inside = start + (end - start) // 2
    if how == "flipped byte":
        data[inside] ^= 0x20
    elif how == "garbage":
        data[inside : inside + 100] = random.Random(how).randbytes(100)
    elif how == "zeroed":
        data[inside : inside + 4096] = bytes(len(data[inside : inside + 4096]))
    elif how == "truncated":
        del data[inside:]
    log.write_bytes(bytes(data))


def tokens_left(path: Path, **options: object) -> list[int]:
    """Whole tokens of every key the worker took from, read by a new owner."""
    with Limiter(RocksDBStore(path, **options)) as limiter:
        return [
            limiter.peek(f"key-{index}", HAMMER_LIMIT).remaining + 1
            for index in range(ACKNOWLEDGED)
        ]


DAMAGE = ["flipped byte", "garbage", "zeroed", "truncated"]


@pytest.mark.parametrize("durability", ["wal", "sync"])
@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_log_after_kill_9_is_never_a_silent_loss(
    tmp_path: Path, durability: str, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "limits"
    acknowledge_and_kill(path, durability)
    damage(newest_log(path), how)
    pristine = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(path), str(pristine)], check=True)

    if how == "truncated" and durability == "wal":
        # A torn tail, the shape a power loss leaves: it opens, with every
        # decision before the cut and none after it.
        left = tokens_left(path)
        cut = left.index(FULL)
        assert 0 < cut < ACKNOWLEDGED
        assert left == [FULL - 1] * cut + [FULL] * (ACKNOWLEDGED - cut)
        return

    with pytest.raises(CorruptState, match="write-ahead log"):
        RocksDBStore(path).open()
    # Refusing changed nothing: the same damage is refused again.
    with pytest.raises(CorruptState):
        RocksDBStore(path).open()

    # on_corrupt=empty opens with what survived and says so, once.
    caplog.set_level(logging.WARNING, logger="bucketcore.rocksdb")
    left = tokens_left(pristine, on_corrupt="empty")
    warnings = [r for r in caplog.records if "write-ahead log" in r.getMessage()]
    assert len(warnings) == 1
    assert FULL - 1 in left  # the intact records came back
    assert tokens_left(pristine) == left  # and the next open is clean


# -- the owner lock ------------------------------------------------------------------


def test_six_processes_racing_one_wins_and_every_loser_names_it(tmp_path: Path) -> None:
    for round_number in range(12):
        path = tmp_path / f"round-{round_number}"
        racers = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.rocksdb_worker", "race", str(path)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        try:
            lines = [racer.stdout.readline().strip() for racer in racers]  # type: ignore[union-attr]
            winners = [line for line in lines if line.startswith("won ")]
            assert len(winners) == 1, lines
            pid = winners[0].split()[1]
            for line in lines:
                if line.startswith("locked"):
                    assert f"owned by pid {pid} on host " in line, line
        finally:
            for racer in racers:
                racer.communicate("close\n", timeout=60)


def test_a_deleted_lock_file_is_store_locked_naming_the_owner(tmp_path: Path) -> None:
    path = tmp_path / "limits"
    with holder(path) as (process, pid):
        lock_file = Path(f"{path}.owner.lock")
        lock_file.unlink()
        with pytest.raises(StoreLocked, match=f"open in pid {pid} on host .*deleted"):
            RocksDBStore(path).open()
        assert f"pid={os.getpid()} " not in lock_file.read_text()  # it names no failed opener
        release(process)
    store = RocksDBStore(path)
    store.open()  # the owner is gone: the recreated lock file works
    store.close()


def test_a_missing_parent_is_refused_unless_create(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "limits"
    with pytest.raises(ConfigurationError, match=r"does not exist.*create=true"):
        Limiter(f"rocksdb://{path}")
    assert not (tmp_path / "no").exists()
    with Limiter(f"rocksdb://{path}?create=true") as limiter:
        assert limiter.try_acquire("k", ALICE_LIMIT)
    assert (path / "CURRENT").exists()


@pytest.mark.parametrize("lock_timeout", ["0", "inf"])
def test_an_unusable_path_names_the_cause_and_never_waits(lock_timeout: str) -> None:
    limiter = Limiter(f"rocksdb:///proc/bucketcore-limits?lock_timeout={lock_timeout}")
    with pytest.raises(StoreError, match="cannot open its lock file") as raised:
        limiter.try_acquire("k", ALICE_LIMIT)
    assert not isinstance(raised.value, StoreLocked)


# -- lazy opening and fork -------------------------------------------------------------


def test_a_reloader_parent_that_builds_the_app_leaves_the_store_to_the_child(
    tmp_path: Path,
) -> None:
    assert run_worker("serve-app", tmp_path / "limits") == "200 200 200"


def test_a_store_used_before_a_fork_says_why_the_child_cannot_use_it(tmp_path: Path) -> None:
    child, parent = run_worker("fork-after-use", tmp_path / "limits").splitlines()[:2]
    assert child.startswith("child StoreError RocksDB store ")
    assert "one owner process" in child
    assert "before the fork" in child
    assert parent == "parent 8"  # the child took nothing, and the parent's store still works


def test_building_a_limiter_takes_no_ownership(tmp_path: Path) -> None:
    path = tmp_path / "limits"
    unused = Limiter(f"rocksdb://{path}")
    with Limiter(f"rocksdb://{path}") as other:  # no StoreLocked: the first never opened
        assert other.try_acquire("k", ALICE_LIMIT)
    unused.close()
