"""lmdb:// across real processes: exact sharing, kill -9, a dead writer, fork.

Each test runs ``tests/lmdb_worker.py`` in subprocesses on one environment
under ``tmp_path``. Real time appears only where it is the point (a dead
writer must not block the others), with generous bounds.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bucketcore import Limiter
from tests.lmdb_worker import CRASH_KEYS, CRASH_LIMIT, FORKED, HOT, ROOMY, TIGHT

ROOT = Path(__file__).resolve().parent.parent


def start(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.lmdb_worker", *map(str, args)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def run(*args: object, timeout: float = 60) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tests.lmdb_worker", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_four_processes_of_four_threads_get_exactly_the_burst(tmp_path: Path) -> None:
    path = tmp_path / "limits"
    workers = [start("grab", path, 4) for _ in range(4)]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline() == "ready\n"
        for worker in workers:  # all at once, as far as the OS lets us
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        granted = [int(worker.communicate(timeout=60)[0]) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    assert sum(granted) == HOT.burst


def test_several_limits_across_processes_are_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "limits"
    workers = [start("pair", path, 20) for _ in range(3)]
    granted = [int(worker.communicate(timeout=60)[0]) for worker in workers]
    # 60 calls against a tight limit of 30: exactly 30 granted, and the roomy
    # limit (1000) lost exactly those 30, none for the 30 denials.
    assert sum(granted) == TIGHT.burst
    with Limiter(f"lmdb://{path}") as limiter:
        assert limiter.peek("pair", ROOMY).remaining == ROOMY.burst - TIGHT.burst - 1


def _crash_rounds(path: Path, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    acknowledged = dict.fromkeys((f"crash-{i}" for i in range(CRASH_KEYS)), 0)
    for round_number in range(rounds):
        worker = start("hammer", path, f"{seed}-{round_number}")
        assert worker.stdout is not None
        assert worker.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.01, 0.15))
        worker.send_signal(signal.SIGKILL)
        # Read through the same buffered file as readline() (communicate()
        # would read the pipe beneath it and miss what readline() buffered).
        out = worker.stdout.read()
        worker.stdout.close()
        assert worker.stdin is not None
        worker.stdin.close()
        worker.wait(timeout=60)
        for line in out.splitlines():
            if line in acknowledged:  # a line cut by the kill is not an acknowledgement
                acknowledged[line] += 1
    assert sum(acknowledged.values()) > 0
    consumed = {}
    for line in run("remaining", path).splitlines():
        key, remaining = line.split()
        consumed[key] = CRASH_LIMIT.burst - 1 - int(remaining)  # peek takes one more
    for key, count in acknowledged.items():
        assert consumed[key] >= count, f"{key}: an acknowledged grant was lost"
    # At most one decision per round was committed but never acknowledged.
    assert sum(consumed.values()) - sum(acknowledged.values()) <= rounds


def test_kill_9_at_random_moments_loses_no_acknowledged_decision(tmp_path: Path) -> None:
    _crash_rounds(tmp_path / "limits", rounds=10, seed=11)


@pytest.mark.slow
def test_kill_9_many_rounds(tmp_path: Path) -> None:
    _crash_rounds(tmp_path / "limits", rounds=60, seed=12)


def test_a_writer_killed_inside_its_transaction_blocks_nobody(tmp_path: Path) -> None:
    path = tmp_path / "limits"
    run("pair", path, 1)  # the environment exists, made by us
    holder = start("hold-write", path)
    assert holder.stdout is not None
    assert holder.stdout.readline() == "holding\n"
    blocked = start("pair", path, 1)
    time.sleep(0.3)
    assert blocked.poll() is None, "the holder's write transaction did not block anyone"
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=30)  # reaped, its pipes closed
    started = time.monotonic()
    out, _ = blocked.communicate(timeout=30)
    assert out == "1\n"
    assert time.monotonic() - started < 5  # generous: LMDB's robust mutex frees it at once
    assert run("pair", path, 1, timeout=10) == "1\n"  # and a newcomer decides too


def test_a_limiter_made_before_fork_serves_three_children_exactly(tmp_path: Path) -> None:
    report = json.loads(run("fork", tmp_path / "limits", 3))
    assert report["statuses"] == [0, 0, 0]
    assert sum(report["counts"]) == FORKED.burst
    assert report["parent_allowed"] is False
