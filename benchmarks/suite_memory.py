"""memory:// next to its floor and the peers: workloads, threads, resident keys.

Workloads (each a group; every case decides the same key sequence):

- one hot key, allowed; one hot key, denied;
- 100k keys round-robin, allowed (buckets stay resident), denied, and
  allowed with buckets full again at each visit (bucketcore forgets them);
- a Zipf mix over 1M keys (s = 1.1, fixed seed);
- 1, 2 and 8 threads sharing one limiter;
- scaling: N resident buckets (1 .. 1M), decisions on random resident keys.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from benchmarks import contenders
from benchmarks.contenders import ALWAYS_FULL, DENIED, IN_USE, Policy
from benchmarks.harness import (
    Group,
    Key,
    Sizes,
    build,
    close_all,
    group_of,
    interleave,
    progress,
    wrong_answers,
)
from benchmarks.harness import time_pass as _pass
from benchmarks.harness import time_threads as _threads

SUITE = "memory"
ZIPF_S = 1.1


def zipf_keys(space: int, count: int, seed: int = 5) -> list[Key]:
    """``count`` keys of ``space`` drawn with Zipf weights 1/rank^s (rank 1 hottest)."""
    weights = itertools.accumulate(1.0 / rank**ZIPF_S for rank in range(1, space + 1))
    ranks = random.Random(seed).choices(range(space), cum_weights=list(weights), k=count)
    return [f"user-{rank}" for rank in ranks]


def _workload(
    group_id: str,
    title: str,
    policy: Policy,
    fill: Sequence[Key],
    measured: Sequence[Key],
    sizes: Sizes,
    *,
    peers: bool = True,
    note: str = "",
) -> Group:
    progress(f"  {SUITE}: {title}")
    built = build(contenders.memory_cases(policy, peers=peers))
    try:
        times = interleave(
            built, sizes.rounds, lambda d: _pass(d, measured), warm_up=lambda d: _pass(d, fill)
        )
        wrong = wrong_answers(built, measured[0], allowed=policy is not DENIED)
    finally:
        close_all(built)
    if wrong:
        note = f"{note}; answered the other way: {', '.join(wrong)}".lstrip("; ")
    return group_of(group_id, title, SUITE, contenders.FLOOR_NAME, built, times, note=note)


def run(sizes: Sizes) -> list[Group]:
    """Every memory group at ``sizes``."""
    calls = sizes.calls
    hot = ["hot"] * calls
    cycle = [f"user-{i}" for i in range(sizes.many_keys)]
    # The warm-up visits every key once; the timed passes then walk the cycle,
    # so each call finds a resident bucket of a 100k-key table.
    walk = list(itertools.islice(itertools.cycle(cycle), calls))
    zipf = zipf_keys(sizes.zipf_keys, calls)
    groups = [
        _workload("memory.hot", "one hot key, allowed", ALWAYS_FULL, hot, hot, sizes),
        _workload(
            "memory.many",
            f"{sizes.many_keys:,} keys round-robin, allowed",
            IN_USE,
            cycle,
            walk,
            sizes,
        ),
        _workload(
            "memory.many_full",
            f"{sizes.many_keys:,} keys round-robin, full again at each visit",
            ALWAYS_FULL,
            cycle,
            walk,
            sizes,
            peers=sizes.peers_everywhere,
            note="bucketcore drops full buckets and recreates them: its memory bound at work",
        ),
        _workload(
            "memory.zipf",
            f"Zipf mix (s={ZIPF_S}) over {sizes.zipf_keys:,} keys, allowed",
            IN_USE,
            zipf,
            zipf,
            sizes,
        ),
        _workload("memory.denied_hot", "one hot key, denied", DENIED, hot, hot, sizes),
        _workload(
            "memory.denied_many",
            f"{sizes.many_keys:,} keys round-robin, denied",
            DENIED,
            cycle,
            walk,
            sizes,
            peers=sizes.peers_everywhere,
            note="the warm-up pass takes each key's one token; every timed call is denied",
        ),
    ]
    groups += threads(sizes)
    groups += scaling(sizes)
    return groups


def threads(sizes: Sizes) -> list[Group]:
    """1, 2 and 8 threads on one shared limiter: wall time per decision."""
    groups = []
    for count in sizes.threads:
        title = f"{count} thread{'s' if count > 1 else ''}, distinct keys, allowed"
        progress(f"  {SUITE}: {title}")
        per_thread = max(1, sizes.calls // count)
        slices = [[f"t{t}-{i % 1000}" for i in range(per_thread)] for t in range(count)]
        built = build(contenders.memory_cases(IN_USE, peers=sizes.peers_everywhere))
        try:
            times = interleave(built, sizes.rounds, lambda d, s=slices: _threads(d, s))  # type: ignore[misc]
        finally:
            close_all(built)
        groups.append(
            group_of(
                f"memory.threads.{count}",
                title,
                SUITE,
                contenders.FLOOR_NAME,
                built,
                times,
                x=float(count),
                note="wall time / decisions: the GIL serialises Python, so flat is the best case",
            )
        )
    return groups


def scaling(sizes: Sizes) -> list[Group]:
    """Cost per decision with N resident buckets, on random resident keys."""
    groups = []
    for resident in sizes.resident:
        title = f"{resident:,} resident bucket{'s' if resident != 1 else ''}, allowed"
        progress(f"  {SUITE}: {title}")
        fill = [f"user-{i}" for i in range(resident)]
        rng = random.Random(resident)
        measured = [fill[rng.randrange(resident)] for _ in range(sizes.calls)]
        built = build(contenders.memory_cases(IN_USE, peers=False))
        try:
            times = interleave(
                built,
                sizes.rounds,
                lambda d, m=measured: _pass(d, m),  # type: ignore[misc]
                warm_up=lambda d, f=fill: _pass(d, f),  # type: ignore[misc]
            )
        finally:
            close_all(built)
        groups.append(
            group_of(
                f"memory.resident.{resident}",
                title,
                "scaling",
                contenders.FLOOR_NAME,
                built,
                times,
                x=float(resident),
            )
        )
    return groups
