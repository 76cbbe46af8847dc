"""The comparison runner runs end to end on a tiny workload (numbers not asserted)."""

from __future__ import annotations

from benchmarks import compare


def test_the_runner_measures_every_available_case() -> None:
    workload = compare.Workload("tiny", [f"k{i}" for i in range(50)], compare.IN_USE)
    times = compare.measure(workload, rounds=1)
    assert "bucketcore try_acquire" in times
    assert "bucketcore acquire (Decision)" in times
    assert all(ns > 0 for ns in times.values())
    rows = compare.bars({"tiny": {**times, compare.FALCONRY: 1.0}}, {"tiny"})
    assert [row[0] for row in rows[:2]] == [
        "tiny: try_acquire / falconry",
        "tiny: acquire / falconry",
    ]
