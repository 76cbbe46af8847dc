"""Timing primitives shared by every suite: interleaved best-of rounds.

The machine is shared and noisy, so no absolute time is ever compared with
anything. Every group measures its cases in one process, round after round
in turn (A B C A B C ...), and keeps each case's best round: a noisy
neighbour slows every case of a round alike, so the ratios between cases of
one group are what the report and the bars use.

A *decider* is a one-argument callable ``decide(key)``; a case builds one
(``make()``), so each case starts from empty state and pays its own set-up
outside the timed loop.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bucketcore._keys import Key

Decide = Callable[[Key], object]

FLOOR = "floor"
BUCKETCORE = "bucketcore"
PEER = "peer"
ROLES = (FLOOR, BUCKETCORE, PEER)


@dataclass(frozen=True)
class Sizes:
    """How much work each suite does; ``QUICK`` and ``FULL`` are the two modes."""

    name: str
    calls: int  # decisions per round on the memory suites
    rounds: int  # interleaved rounds; each case keeps its best
    many_keys: int  # the "100k keys round-robin" workload
    zipf_keys: int  # the Zipf mix's key space
    resident: tuple[int, ...]  # the scaling suite's resident key counts
    store_resident: tuple[int, ...]  # the same, on RocksDB and Redis
    threads: tuple[int, ...]
    peers_everywhere: bool  # peers in the secondary groups too (threads, full, denied)
    footprint_keys: int
    store_calls: int  # decisions per round on RocksDB and Redis
    fsync_seconds: float  # each time-boxed slice of the fsync-bound cases
    processes: tuple[int, ...]
    process_seconds: float  # each process's time-boxed run in the processes suite
    async_tasks: int
    batch: int  # acquire_many's batch size
    replay_seconds: float  # virtual seconds each accuracy pattern lasts


FULL = Sizes(
    name="full",
    calls=50_000,
    rounds=5,
    many_keys=100_000,
    zipf_keys=1_000_000,
    resident=(1, 1_000, 100_000, 1_000_000),
    store_resident=(1, 1_000, 100_000, 1_000_000),
    threads=(1, 2, 8),
    peers_everywhere=True,
    footprint_keys=100_000,
    store_calls=3_000,
    fsync_seconds=1.0,
    processes=(1, 2, 4, 8),
    process_seconds=1.0,
    async_tasks=50,
    batch=100,
    replay_seconds=60.0,
)
QUICK = Sizes(
    name="quick",
    calls=10_000,
    rounds=5,
    many_keys=100_000,
    zipf_keys=1_000_000,
    resident=(1, 1_000, 100_000, 1_000_000),
    store_resident=(1, 1_000, 100_000),
    threads=(1, 2, 8),
    peers_everywhere=False,
    footprint_keys=5_000,
    store_calls=1_000,
    fsync_seconds=0.4,
    processes=(1, 2, 4, 8),
    process_seconds=0.3,
    async_tasks=50,
    batch=100,
    replay_seconds=20.0,
)
# The default test run executes every suite once at this size: it checks
# that nothing has rotted, and its numbers mean nothing.
SMOKE = Sizes(
    name="smoke",
    calls=300,
    rounds=1,
    many_keys=500,
    zipf_keys=2_000,
    resident=(1, 100),
    store_resident=(1, 100),
    threads=(1, 2),
    peers_everywhere=True,
    footprint_keys=200,
    store_calls=50,
    fsync_seconds=0.05,
    processes=(1, 4),
    process_seconds=0.05,
    async_tasks=5,
    batch=10,
    replay_seconds=2.0,
)
SIZES = {sizes.name: sizes for sizes in (FULL, QUICK, SMOKE)}


@dataclass(frozen=True)
class Case:
    """One contender in a group: its name, its role, and how to build it."""

    name: str
    role: str
    make: Callable[[], Decide]

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")


@dataclass
class Group:
    """A like-for-like comparison: the same workload through several cases."""

    id: str
    title: str
    suite: str
    reference: str  # the case every row is divided by (usually the floor)
    rows: list[dict[str, Any]] = field(default_factory=list)
    unit: str = "ns/decision"
    note: str = ""
    x: float | None = None  # position on a scaling axis (threads, resident keys)

    def add(self, case: str, role: str, ns: float, **extra: Any) -> None:
        self.rows.append({"case": case, "role": role, "ns": ns, **extra})

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "suite": self.suite,
            "reference": self.reference,
            "unit": self.unit,
            "note": self.note,
            "x": self.x,
            "rows": self.rows,
        }


_STARTED = time.monotonic()


def progress(message: str) -> None:
    """One line of progress on stderr, with the seconds since the run began."""
    print(f"[{time.monotonic() - _STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def time_pass(decide: Decide, keys: Sequence[Key]) -> float:
    """Nanoseconds per decision for one pass over ``keys``.

    A decider that decides many keys at once (a batch, concurrent tasks)
    carries ``over(keys) -> ns per decision`` and is timed by that instead.
    """
    over = getattr(decide, "over", None)
    if over is not None:
        return float(over(keys))
    started = time.perf_counter_ns()
    for key in keys:
        decide(key)
    return (time.perf_counter_ns() - started) / len(keys)


def time_threads(decide: Decide, slices: Sequence[Sequence[Key]]) -> float:
    """Wall nanoseconds per decision with one thread per slice, started together."""
    barrier = threading.Barrier(len(slices) + 1)

    def work(keys: Sequence[Key]) -> None:
        barrier.wait()
        for key in keys:
            decide(key)

    threads = [threading.Thread(target=work, args=(keys,)) for keys in slices]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter_ns()
    for thread in threads:
        thread.join()
    return (time.perf_counter_ns() - started) / sum(len(keys) for keys in slices)


def time_threads_for(decide: Decide, slices: Sequence[Sequence[Key]], seconds: float) -> float:
    """Wall nanoseconds per decision with one thread per slice, for ``seconds``.

    For cases as slow as an fsync, where a fixed count of calls would be
    either too few to reach a steady state or too long to repeat: each
    thread walks its slice round and round until the time is up.
    """
    barrier = threading.Barrier(len(slices) + 1)
    stop = threading.Event()
    counts = [0] * len(slices)

    def work(index: int, keys: Sequence[Key]) -> None:
        barrier.wait()
        done = 0
        while not stop.is_set():
            decide(keys[done % len(keys)])
            done += 1
        counts[index] = done

    threads = [
        threading.Thread(target=work, args=(index, keys)) for index, keys in enumerate(slices)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter_ns()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return (time.perf_counter_ns() - started) / max(1, sum(counts))


def build(cases: Sequence[Case]) -> dict[str, tuple[Case, Decide]]:
    """Each case's decider; a case that cannot be built is reported and left out."""
    built: dict[str, tuple[Case, Decide]] = {}
    for case in cases:
        try:
            built[case.name] = (case, case.make())
        except Exception as exc:  # a peer missing or changed: report, don't stop
            progress(f"    {case.name}: unavailable ({type(exc).__name__}: {exc})")
    return built


def interleave(
    built: dict[str, tuple[Case, Decide]],
    rounds: int,
    measure: Callable[[Decide], float],
    *,
    warm_up: Callable[[Decide], object] | None = None,
) -> dict[str, float]:
    """Best of ``rounds`` interleaved measurements of every built case."""
    for _case, decide in built.values():
        fill = getattr(decide, "fill", None)  # a faster way to the same state, if any
        if fill is not None:
            fill()
        else:
            (warm_up or measure)(decide)
    best = {name: float("inf") for name in built}
    for _ in range(rounds):
        for name, (_case, decide) in built.items():
            best[name] = min(best[name], measure(decide))
    return best


def wrong_answers(built: dict[str, tuple[Case, Decide]], key: Key, allowed: bool) -> list[str]:
    """The limiters (not floors) whose next answer for ``key`` is not ``allowed``.

    A check that every contender really took the path a group is about.
    """
    wrong = []
    for name, (case, decide) in built.items():
        if case.role == FLOOR or getattr(decide, "over", None) is not None:
            continue
        if bool(decide(key)) != allowed:
            wrong.append(name)
    return wrong


def group_of(
    group_id: str,
    title: str,
    suite: str,
    reference: str,
    built: dict[str, tuple[Case, Decide]],
    times: dict[str, float],
    **options: Any,
) -> Group:
    """A ``Group`` from measured times, in case order."""
    group = Group(group_id, title, suite, reference, **options)
    for name, (case, _decide) in built.items():
        group.add(name, case.role, times[name])
    return group


def close_all(built: dict[str, tuple[Case, Decide]]) -> None:
    """Close what the deciders hold open (limiters, clients), if they say how."""
    for _case, decide in built.values():
        closer = getattr(decide, "close", None)
        if callable(closer):
            closer()
